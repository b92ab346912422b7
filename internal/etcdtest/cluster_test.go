package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
)

// TestFreePorts: the ports are distinct, below the ephemeral range, not
// among those taken already, and free to bind.
func TestFreePorts(t *testing.T) {
	taken := map[int]bool{}
	var all []int
	for range 4 {
		ps, err := freePorts(2, taken)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ps...)
	}
	lo, hi := portRange()
	seen := map[int]bool{}
	for _, p := range all {
		if p < lo || p >= hi || seen[p] || !taken[p] {
			t.Fatalf("ports %v: %d out of [%d, %d), repeated or not recorded", all, p, lo, hi)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		ln.Close()
	}
}

// TestInUse: a bind on a port that is held reads as taken (Start tries
// again), other errors do not.
func TestInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = net.Listen("tcp", ln.Addr().String())
	if err == nil {
		t.Fatal("a second bind on a held port succeeded")
	}
	if !inUse(fmt.Errorf("etcdtest: member m0: %w", err)) {
		t.Fatalf("inUse(%v) = false", err)
	}
	if inUse(errors.New("etcdtest: member m0 not ready after 1m0s")) {
		t.Fatal("inUse took a timeout for a taken port")
	}
}

// TestPortRangeBelowEphemeral: where the kernel says, the ports lie below
// its ephemeral range and above the privileged ports.
func TestPortRangeBelowEphemeral(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral range to read: %v", err)
	}
	var start, end int
	if _, err := fmt.Sscan(string(b), &start, &end); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	lo, hi := portRange()
	if start >= 1024+1000 && (hi != start || lo < 1024 || lo >= hi) {
		t.Fatalf("ephemeral ports from %d: picked in [%d, %d), want below %d and from 1024 up", start, lo, hi, start)
	}
}

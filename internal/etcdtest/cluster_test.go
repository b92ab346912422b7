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
		if len(ps) != 2 {
			t.Fatalf("freePorts(2) = %v", ps)
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
	if !inUse(errors.New("listen tcp 127.0.0.1:20001: bind: address already in use")) {
		t.Fatal("inUse missed a taken port named only in the message")
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

// TestPortsBelow: the range lies below the kernel's ephemeral start, at
// most 12,768 ports wide and from 1024 up; with no room there, or a file
// it cannot read, a range that still works.
func TestPortsBelow(t *testing.T) {
	for _, c := range []struct {
		in     string
		lo, hi int
	}{
		{"32768\t60999\n", 20000, 32768}, // Linux's default
		{"40000 60999", 27232, 40000},
		{"10000 65535", 1024, 10000},
		{"2024 65535", 1024, 2024},
		{"2023 65535", 1024, 65536}, // no room below: any unprivileged port
		{"1024 65535", 1024, 65536},
		{"", portLow, portHigh},
		{"32768", portLow, portHigh},
		{"x 60999", portLow, portHigh},
		{"70000 80000", portLow, portHigh},
	} {
		if lo, hi := portsBelow(c.in); lo != c.lo || hi != c.hi {
			t.Errorf("portsBelow(%q) = [%d, %d), want [%d, %d)", c.in, lo, hi, c.lo, c.hi)
		}
	}
}

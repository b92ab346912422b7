package etcdtest

import (
	"errors"
	"fmt"
	"net"
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
	seen := map[int]bool{}
	for _, p := range all {
		if p < portLow || p >= portHigh || seen[p] || !taken[p] {
			t.Fatalf("ports %v: %d out of [%d, %d), repeated or not recorded", all, p, portLow, portHigh)
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

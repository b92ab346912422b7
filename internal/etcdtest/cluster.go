// Package etcdtest runs a real etcd cluster inside the calling process, on
// loopback, for tests and for scripts/cluster.sh: n members of the
// embedded etcd server (go.etcd.io/etcd/server/v3/embed), each with its
// own data directory, ports picked free on 127.0.0.1. It owns those
// members (start, stop one, restart it, close all) and never the data a
// caller keeps in them.
package etcdtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is n embedded etcd members that form one etcd cluster.
type Cluster struct {
	dir     string
	initial string // the initial-cluster flag every member was started with
	quota   int64  // each member's backend quota; 0: etcd's default
	members []*member
}

type member struct {
	name      string
	dir       string
	peer, cli url.URL
	mu        sync.Mutex
	e         *embed.Etcd // nil while stopped
}

// StartTimeout bounds how long Start and Restart wait for a member to
// join its cluster (generous: a loaded 2-core machine is slow).
const StartTimeout = 60 * time.Second

// Start runs n members with data under dir and waits until every one of
// them serves.
//
// A member's ports are picked free, closed, and bound again by etcd a
// moment later; another process can take one in between (a CI run saw
// "bind: address already in use"). So the ports come from below the
// kernel's ephemeral range, which outgoing connections draw from, and a
// start that loses a port anyway is tried again on new ones, after
// clearing the member directories it created (never one that was there
// before: a start over existing data is not tried again).
//
// Each member's backend quota is QuotaBytes: tests store far less.
func Start(dir string, n int) (*Cluster, error) { return StartQuota(dir, n, QuotaBytes) }

// StartQuota is Start with each member's backend quota (0: etcd's
// default, 2 GiB, and a first mapping of 10 GiB of address space).
func StartQuota(dir string, n int, quota int64) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("etcdtest: at least one member")
	}
	fresh := true
	for i := range n {
		if _, err := os.Stat(memberDir(dir, i)); err == nil {
			fresh = false
		}
	}
	var err error
	for range startAttempts {
		var c *Cluster
		if c, err = start(dir, n, quota); err == nil || !inUse(err) || !fresh {
			return c, err
		}
		for i := range n { // the next try bootstraps a new cluster there
			if rerr := os.RemoveAll(memberDir(dir, i)); rerr != nil {
				return nil, fmt.Errorf("%w (and clearing for a new try: %w)", err, rerr)
			}
		}
	}
	return nil, err
}

func memberDir(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("m%d", i)) }

// startAttempts bounds Start's tries on ports another process took.
const startAttempts = 5

// inUse reports whether err is a port taken under a member.
func inUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func start(dir string, n int, quota int64) (*Cluster, error) {
	c := &Cluster{dir: dir, quota: quota}
	var parts []string
	taken := map[int]bool{}
	for i := range n {
		ports, err := freePorts(2, taken)
		if err != nil {
			return nil, err
		}
		m := &member{
			name: fmt.Sprintf("m%d", i),
			dir:  memberDir(dir, i),
			peer: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])},
			cli:  url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])},
		}
		c.members = append(c.members, m)
		parts = append(parts, m.name+"="+m.peer.String())
	}
	c.initial = strings.Join(parts, ",")
	errs := make([]error, n)
	var wg sync.WaitGroup
	// A member that cannot start ends the others' wait: without it they
	// could lack a quorum and wait out StartTimeout.
	abort := make(chan struct{})
	var once sync.Once
	for i, m := range c.members {
		wg.Go(func() {
			if errs[i] = c.run(m, embed.ClusterStateFlagNew, abort); errs[i] != nil {
				once.Do(func() { close(abort) })
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// portRange returns where ports are picked: below the kernel's
// ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999
// by default), so that no outgoing connection is given one between the
// pick and etcd's bind; 12,768 ports wide at most, from 1024 up. Where
// that range starts too low to leave room (or cannot be read as Linux
// writes it), any unprivileged port: the retry is then all there is.
func portRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return portLow, portHigh
	}
	return portsBelow(string(b))
}

// portsBelow is portRange for the ephemeral range as the kernel writes
// it ("32768\t60999\n").
func portsBelow(ephemeral string) (lo, hi int) {
	f := strings.Fields(ephemeral)
	if len(f) != 2 {
		return portLow, portHigh
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start > 65535 {
		return portLow, portHigh
	}
	if start < 1024+1000 {
		return 1024, 65536
	}
	return max(1024, start-(portHigh-portLow)), start
}

// The range for a kernel whose ephemeral ports are Linux's default.
const portLow, portHigh = 20000, 32768

// freePorts returns n TCP ports free on 127.0.0.1 now, none in taken,
// and adds them to taken.
func freePorts(n int, taken map[int]bool) ([]int, error) {
	lo, hi := portRange()
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("etcdtest: no free port in [%d, %d) after %d tries", lo, hi, tries)
		}
		p := lo + rand.IntN(hi-lo)
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // in use
		}
		ln.Close()
		taken[p] = true
		out = append(out, p)
	}
	return out, nil
}

// QuotaBytes is each member's backend quota under Start: 256 MiB. Past
// it etcd refuses writes (the NOSPACE alarm) until it is compacted and
// defragmented.
const QuotaBytes = 256 << 20

// run starts m and waits until it serves.
func (c *Cluster) run(m *member, state string, abort <-chan struct{}) error {
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = m.name, m.dir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{m.peer}, []url.URL{m.peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{m.cli}, []url.URL{m.cli}
	cfg.InitialCluster, cfg.InitialClusterToken, cfg.ClusterState = c.initial, "theus-test", state
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	// A quota other than the default sizes bbolt's first mapping to it
	// (and a tenth more) instead of 10 GiB of address space per member,
	// which a test run under an address-space limit (ulimit -v, the
	// mutation runs) cannot map.
	cfg.QuotaBackendBytes = c.quota
	// Tests run on a loaded 2-core machine: a tick of 100 ms with an
	// election at 10 ticks (the defaults) keeps leaders from flapping.
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcdtest: member %s: %w", m.name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcdtest: member %s: %w", m.name, err)
	case <-time.After(StartTimeout):
		e.Close()
		return fmt.Errorf("etcdtest: member %s not ready after %v", m.name, StartTimeout)
	case <-abort:
		e.Close()
		return fmt.Errorf("etcdtest: member %s: another member failed to start", m.name)
	}
	m.mu.Lock()
	m.e = e
	m.mu.Unlock()
	return nil
}

// Endpoints returns every member's client URL, stopped ones included.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.cli.String()
	}
	return out
}

// Len is the number of members.
func (c *Cluster) Len() int { return len(c.members) }

// Leader returns the index of the member that is the Raft leader now, as
// the running members see it, or -1 if none is known.
func (c *Cluster) Leader() int {
	for _, m := range c.members {
		m.mu.Lock()
		e := m.e
		m.mu.Unlock()
		if e == nil {
			continue
		}
		lead := uint64(e.Server.Leader())
		for j, o := range c.members {
			o.mu.Lock()
			if o.e != nil && uint64(o.e.Server.MemberID()) == lead {
				o.mu.Unlock()
				return j
			}
			o.mu.Unlock()
		}
	}
	return -1
}

// Stop stops member i (its data stays, for Restart). Stopping a stopped
// member does nothing.
func (c *Cluster) Stop(i int) {
	m := c.members[i]
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts a stopped member again on its data and ports. The
// cluster's membership names its ports, so it cannot move: if another
// process took one while the member was stopped, Restart fails with
// "address already in use".
func (c *Cluster) Restart(i int) error {
	return c.run(c.members[i], embed.ClusterStateFlagExisting, nil)
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.Stop(i)
	}
}

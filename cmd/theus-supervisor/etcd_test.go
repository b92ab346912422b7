package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/etcdtest"
	"github.com/theus-run/theus/internal/outbuf"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/supervisor"
)

// parseStore runs args through the real command line, --store included.
func parseStore(args ...string) (supervisor.Config, error) {
	var f flags
	cmd := command(&f)
	if err := cmd.ParseFlags(args); err != nil {
		return supervisor.Config{}, err
	}
	cfg, err := f.config()
	if err != nil {
		return cfg, err
	}
	return cfg, f.storeConfig(&cfg, cmd.Flags().Changed)
}

func TestStoreFlags(t *testing.T) {
	t.Setenv("THEUS_HEAVY_SIZE", "")
	cfg, err := parseStore("--store", "etcd", "--etcd-endpoints", "http://a:2379,http://b:2379", "--etcd-prefix", "p/")
	if err != nil {
		t.Fatal(err)
	}
	switch e := cfg.Etcd; {
	case e == nil || !slices.Equal(e.Endpoints, []string{"http://a:2379", "http://b:2379"}) || e.Prefix != "p/":
		t.Fatalf("etcd config %+v", e)
	case cfg.StateDir != "" || cfg.HeavySize != 0:
		t.Fatalf("state dir %q, heavy size %d: want none with etcd", cfg.StateDir, cfg.HeavySize)
	}
	if cfg, err = parseStore(); err != nil || cfg.Etcd != nil {
		t.Fatalf("default: etcd %+v, %v: want the bbolt store", cfg.Etcd, err)
	}
	if _, err = parseStore("--store", "etcd", "--etcd-endpoints", "http://a:2379", "--heavy-size", "0"); err != nil {
		t.Fatalf("--heavy-size 0 with etcd: %v", err)
	}
	if cfg, err = parseStore("--store", "etcd", "--etcd-endpoints", "http://a:2379"); err != nil || cfg.Etcd.OpIDRetention != 24*time.Hour {
		t.Fatalf("etcd: op id retention %v, %v: want 24h by default", cfg.Etcd, err)
	}
	if cfg, err = parseStore("--store", "etcd", "--etcd-endpoints", "http://a:2379", "--etcd-opid-retention", "-1s"); err != nil || cfg.Etcd.OpIDRetention >= 0 {
		t.Fatalf("--etcd-opid-retention -1s: %v, %v: want op ids kept for ever", cfg.Etcd, err)
	}
	if cfg, err = parseStore("--store", "etcd", "--etcd-endpoints", "http://a:2379", "--flux", "/tmp/f"); err != nil || cfg.Flux != "/tmp/f" {
		t.Fatalf("--flux with etcd: %q, %v: want the directory (runs owned across supervisors)", cfg.Flux, err)
	}
	if cfg, err = parseStore("--store", "etcd", "--etcd-endpoints", "http://a:2379", "--heavy-size", "1MiB"); err != nil || cfg.HeavySize != 1<<20 {
		t.Fatalf("--heavy-size 1MiB with etcd: heavy size %d, %v: want the arena, host-local", cfg.HeavySize, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", "redis"}, "--store"},
		{[]string{"--etcd-endpoints", "http://a:2379"}, "needs --store etcd"},
		{[]string{"--store", "etcd"}, "--etcd-endpoints"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--state-dir", "/tmp/x"}, "--state-dir"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--durability", "async"}, "--durability"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--restore", "/tmp/b"}, "--restore"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--demo"}, "--demo"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--etcd-tls-cert", "c.pem"}, "--etcd-tls-key"},
		{[]string{"--etcd-opid-retention", "1h"}, "needs --store etcd"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--etcd-opid-retention", "0s"}, "--etcd-opid-retention"},
	} {
		if _, err := parseStore(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}

// startEtcdSupervisor starts this binary as theus-supervisor --store etcd
// on endpoints, with extra flags, and waits until it serves its socket.
func startEtcdSupervisor(t *testing.T, endpoints []string, prefix string, extra ...string) (*exec.Cmd, string, *outbuf.Buffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "run", "s.sock")
	args := []string{"--workers", "1", "--socket", sock, "--log-format", "json",
		"--store", "etcd", "--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-prefix", prefix}
	cmd := dieWithTest(exec.Command(exe, append(args, extra...)...))
	cmd.Env = append(os.Environ(), "THEUS_TEST_MAIN=1")
	stderr := &outbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := client.Dial(sock)
		if err == nil {
			c.Close()
			return cmd, sock, stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the supervisor did not come up: %v\n%s", err, stderr)
		}
	}
}

// TestEtcdKill9: two theus-supervisor processes on one 3-member etcd
// cluster; one is killed with SIGKILL under load. Every request carries
// an op id and is sent again through the survivor until acknowledged:
// the counter ends at exactly the number of requests, so nothing
// acknowledged was lost and nothing applied twice.
func TestEtcdKill9(t *testing.T) {
	cl, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	victim, vsock, _ := startEtcdSupervisor(t, cl.Endpoints(), "kill9/")
	survivor, ssock, serr := startEtcdSupervisor(t, cl.Endpoints(), "kill9/")
	dial := func(sock string) *client.Client {
		c, err := client.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	vc, sc := dial(vsock), dial(ssock)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var sent, acked, moved atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				req := client.Request{Process: "counter.add", OpID: client.NewOpID(), RetryFor: -1, Timeout: 10 * time.Second}
				c := []*client.Client{vc, sc}[i%2]
				for {
					_, err := c.Do(ctx, req)
					if err == nil {
						acked.Add(1)
						break
					}
					if ctx.Err() != nil {
						t.Errorf("op %s: %v", req.OpID, err)
						return
					}
					if c == vc {
						moved.Add(1)
					} else if !errors.Is(err, protocol.ErrRetryLimit) {
						t.Errorf("op %s through the survivor: %v", req.OpID, err)
						return
					}
					c = sc // the same op id, through the other supervisor
				}
			}
		})
	}
	count := func() int64 {
		v, err := sc.Get(ctx, demo.CounterPath)
		if err != nil {
			return 0
		}
		var n int64
		json.Unmarshal(v.Entries[0].Value, &n)
		return n
	}
	for count() < 30 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	victim.Process.Kill()
	victim.Wait()
	for n := count(); count() < n+30 && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if got := count(); got != acked.Load() || acked.Load() != sent.Load() {
		t.Fatalf("counter %d, %d requests, %d acknowledged\n%s", got, sent.Load(), acked.Load(), serr)
	}
	if moved.Load() == 0 {
		t.Fatal("no request was sent again through the survivor: the kill was not under load")
	}
	t.Logf("%d requests, all acknowledged once; %d sent again after the kill", sent.Load(), moved.Load())
	survivor.Process.Signal(os.Interrupt)
	if err := survivor.Wait(); err != nil {
		t.Fatalf("survivor: %v\n%s", err, serr)
	}
}

package clustertest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/etcdtest"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
	"github.com/theus-run/theus/supervisor"
)

// startHeavy starts a supervisor on cl, under the test's prefix, with a
// HEAVY arena of 16 MiB for its one worker.
func startHeavy(t *testing.T, cl *etcdtest.Cluster) *harness {
	t.Helper()
	return start(t, 1, func(cfg *supervisor.Config) {
		cfg.HeavySize = 16 << 20
		cfg.Etcd = &supervisor.EtcdConfig{Endpoints: cl.Endpoints(), Prefix: "t/" + t.Name() + "/"}
	})
}

// An arena tensor lives in its writer's arena: its own supervisor runs
// processes on it and serves it; the other answers remote_tensor to a
// process that reads it and to a Get, and runs and commits nothing. An
// inline tensor travels to both.
func etcdRemoteTensor(t *testing.T, cl *etcdtest.Cluster) {
	a, b := startHeavy(t, cl), startHeavy(t, cl)
	ca, cb := a.dial(t), b.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 1 << 16 // 256 KiB of F32: through the arena
	if _, err := ca.Exec(ctx, "tensor.fill", demo.FillArgs{Key: "w", N: n, Value: 0.5}); err != nil {
		t.Fatal(err)
	}
	r, err := ca.Exec(ctx, "tensor.sum", demo.KeyArgs{Key: "w"})
	if err != nil {
		t.Fatalf("tensor.sum on its host: %v", err)
	}
	if string(r.Result) != "32768" {
		t.Fatalf("tensor.sum on its host: %s", r.Result)
	}
	v, err := ca.Get(ctx, demo.TensorPrefix+".w")
	if err != nil {
		t.Fatal(err)
	}
	d, err := shm.ParseDescriptor(v.Entries[0].Value, 1<<20)
	if err != nil || d.Inline() {
		t.Fatalf("Get on the tensor's host: %s: %v, want an arena descriptor as on one machine", v.Entries[0].Value, err)
	}
	before, err := ca.Get(ctx, demo.SumsPath+".w")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cb.Exec(ctx, "tensor.sum", demo.KeyArgs{Key: "w"})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeRemoteTensor || pe.Path != demo.TensorPrefix+".w" || !strings.Contains(pe.Message, "not copied") {
		t.Fatalf("tensor.sum through another supervisor: %v, want remote_tensor naming %s.w", err, demo.TensorPrefix)
	}
	if after, err := cb.Get(ctx, demo.SumsPath+".w"); err != nil || after.Entries[0].Version != before.Entries[0].Version {
		t.Fatalf("after the refused run: %+v, %v; want the sum of version %d untouched", after, err, before.Entries[0].Version)
	}
	if _, err := cb.Get(ctx, demo.TensorPrefix+".w"); !errors.Is(err, protocol.ErrRemoteTensor) {
		t.Fatalf("Get of the tensor through another supervisor: %v, want remote_tensor", err)
	}
	if _, err := b.s.Tensor(demo.TensorPrefix + ".w"); !errors.Is(err, protocol.ErrRemoteTensor) {
		t.Fatalf("Tensor through another supervisor: %v, want remote_tensor", err)
	}
	if _, err := cb.Exec(ctx, "tensor.fill", demo.FillArgs{Key: "small", N: 8, Value: 2}); err != nil {
		t.Fatal(err)
	}
	r, err = ca.Exec(ctx, "tensor.sum", demo.KeyArgs{Key: "small"})
	if err != nil {
		t.Fatalf("an inline tensor written through B, summed through A: %v", err)
	}
	if string(r.Result) != "16" {
		t.Fatalf("an inline tensor written through B, summed through A: %s", r.Result)
	}
}

// A tensor written again and again at one path, through two supervisors
// in turn, each with an arena that holds a few of them: each replaced
// tensor is freed by the supervisor whose arena holds it, whichever
// supervisor replaced it, so no write finds the arena full, and each
// arena ends with what it holds at the start plus the one tensor of the
// last write, if it made it.
func etcdTensorsFreed(t *testing.T, cl *etcdtest.Cluster) {
	small := func(cfg *supervisor.Config) {
		cfg.HeavySize = 2 << 20
		cfg.Etcd = &supervisor.EtcdConfig{Endpoints: cl.Endpoints(), Prefix: "t/" + t.Name() + "/"}
	}
	sups := []*harness{start(t, 1, small), start(t, 1, small)}
	clients := []*client.Client{sups[0].dial(t), sups[1].dial(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	heavyOf := func(h *harness) protocol.HeavyStatus { return h.s.Status(&protocol.Status{}).Heavy }
	base := []protocol.HeavyStatus{heavyOf(sups[0]), heavyOf(sups[1])}
	const n, writes = 1 << 16, 24 // 256 KiB each: 12 per arena of 2 MiB, were none freed
	for i := range writes {
		if _, err := clients[i%2].Exec(ctx, "tensor.fill", demo.FillArgs{Key: "w", N: n, Value: float32(i)}); err != nil {
			t.Fatalf("write %d through supervisor %d: %v (a full arena: replaced tensors are not freed)", i, i%2, err)
		}
	}
	last := (writes - 1) % 2
	deadline := time.Now().Add(time.Minute)
	for i, h := range sups {
		want := base[i]
		for {
			got := heavyOf(h)
			if i != last && got.InUse == want.InUse && got.Blocks == want.Blocks {
				break
			}
			if i == last && got.Blocks == want.Blocks+1 && got.InUse >= want.InUse+4*n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("supervisor %d holds %d blocks, %d bytes; at the start %d, %d (the last write went through supervisor %d)", i, got.Blocks, got.InUse, want.Blocks, want.InUse, last)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	sum := func(when string) {
		t.Helper()
		r, err := clients[last].Exec(ctx, "tensor.sum", demo.KeyArgs{Key: "w"})
		if err != nil || string(r.Result) != strconv.Itoa((writes-1)*n) {
			t.Fatalf("tensor.sum of the last write, %s: %s, %v; want %d", when, r.Result, err, (writes-1)*n)
		}
	}
	sum("before its writer dies")
	// Its writer dies: the tensor moves out of the dead worker's slab,
	// committed to etcd with its new descriptor, and the slab closes.
	h := sups[last]
	before, err := clients[last].Get(ctx, demo.TensorPrefix+".w")
	if err != nil {
		t.Fatal(err)
	}
	old := h.s.WorkerPIDs()
	for _, pid := range old {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	for {
		st, pids := heavyOf(h), h.s.WorkerPIDs()
		if len(pids) == 1 && pids[0] != old[0] && st.Retired == 0 && st.Blocks == base[last].Blocks+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead writer's slab never closed: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	after, err := clients[last].Get(ctx, demo.TensorPrefix+".w")
	if err != nil || after.Entries[0].Version == before.Entries[0].Version {
		t.Fatalf("after its writer died, the tensor is %+v, %v: not moved", after, err)
	}
	sum("after it moved")
}

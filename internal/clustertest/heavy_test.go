package clustertest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

package wasm

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// A snapshot taken as JSON starts another Runtime where the first one
// was, op ids and live runs included: a run waiting for a signal resumes
// once its processes are registered and the engine starts.
func TestSnapshotJSONRoundTrip(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	register(t, r, "log", Decl{Outputs: []string{"domain.log_events"}}, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		return nil, c.Append("domain.log_events", json.RawMessage(`"hi"`))
	})
	ctx := context.Background()
	if _, err := r.Exec(ctx, Request{Process: "counter.add", OpID: "op-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Exec(ctx, Request{Process: "log"}); err != nil {
		t.Fatal(err)
	}
	eng, _ := r.Flux()
	wf := "steps:\n  - flux: wait\n    signal: domain.sig_go\n  - counter.add\n"
	if _, err := eng.Run(ctx, flux.RunRequest{Source: wf, ID: "w1", Detach: true}); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()

	s, err := ParseSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	r2 := newRuntime(t, Config{Restore: &st})
	register(t, r2, "counter.add", counterDecl, counterAdd(nil))
	register(t, r2, "log", Decl{Outputs: []string{"domain.log_events"}}, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		return nil, c.Append("domain.log_events", json.RawMessage(`"again"`))
	})
	if _, err := r2.Exec(ctx, Request{Process: "log"}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, r2, "domain.log_events"); got != `{"00000000000000000000":"hi","00000000000000000001":"again"}` {
		t.Fatalf("the log's numbering did not survive: %s", got)
	}
	if rep, err := r2.Exec(ctx, Request{Process: "counter.add", OpID: "op-1"}); err != nil || !rep.Duplicate {
		t.Fatalf("op-1 after the round trip: %+v %v", rep, err)
	}
	eng2, err := r2.Flux()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if _, err := r2.Signal(ctx, "domain.sig_go", nil); err != nil {
			t.Fatal(err)
		}
		v, err := eng2.Status("w1")
		if err != nil {
			t.Fatal(err)
		}
		if v.Status == flux.StatusComplete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restored run never went on: %+v", v)
		}
	}
	if got := get(t, r2, "domain.counter"); got != "2" {
		t.Fatalf("counter %s", got)
	}
}

func TestParseSnapshotRefusesMalformed(t *testing.T) {
	for _, src := range []string{
		`{"version":1,"entries":[],"extra":1}`,
		`{"version":1,"entries":[]} {}`,
		`[]`,
	} {
		if _, err := ParseSnapshot([]byte(src)); code(err) != protocol.CodeBadRequest {
			t.Errorf("%s: %v", src, err)
		}
	}
	for _, s := range []Snapshot{
		{Version: 1, Entries: []SnapshotEntry{{Path: "domain.x", Version: 1, Value: json.RawMessage("1"), Bytes: []byte("1")}}},
		{Version: 1, OpIDs: []SnapshotOpID{{ID: "a", Version: 1, Digest: "zz"}}},
	} {
		if _, err := s.State(); code(err) != protocol.CodeBadRequest {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

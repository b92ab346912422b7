package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/theus-run/theus/protocol"
)

// A repeat of an op id that committed is the first call's reply
// (Duplicate), whatever the audit: its args are not judged again, so its
// input violations are not counted twice and a B rule at its threshold,
// or a stop since, does not refuse it.
func TestAuditDuplicateOpIDJudgedOnce(t *testing.T) {
	h, _ := startAudited(t, `audit: {threshold_max: 1, reset_on_success: false}
process_recipes:
  order.place:
    inputs:
      - {field: qty, max: 5, level: B}
      - {field: item, neq: "poison", level: S}
`, nil)
	exec := func(op, args string) *protocol.Reply {
		return h.s.Execute(context.Background(), &protocol.Execute{Process: "order.place", OpID: op, Args: json.RawMessage(args)})
	}
	const big = `{"id":"o1","item":"tea","qty":9}`
	h.wantCode(t, exec("op-1", big), "") // counted 1: the threshold
	rep := exec("op-1", big)
	h.wantCode(t, rep, "")
	if !rep.Duplicate {
		t.Fatalf("the repeat ran again: %+v", rep)
	}
	if c := h.counts(t)["order.place inputs[0]:qty"]; c != 1 {
		t.Fatalf("count %d after a repeat, want 1", c)
	}
	// A stop since the op committed: the repeat is still its first reply.
	h.wantCode(t, exec("op-2", `{"id":"o2","item":"poison","qty":1}`), protocol.CodeAuditStop)
	rep = exec("op-1", big)
	h.wantCode(t, rep, "")
	if !rep.Duplicate {
		t.Fatalf("a repeat of a committed op refused: %+v", rep)
	}
	var log struct{ Total uint64 }
	h.auditCall(t, protocol.MethodAuditLog, struct{}{}, &log)
	if log.Total != 2 {
		t.Fatalf("%d violations logged, want 2 (one per call that ran)", log.Total)
	}
}

// Concurrent calls that break a B output rule: exactly threshold_max of
// them commit, however many are in flight at once; the rest are refused.
func TestAuditBlockOutputsUnderConcurrency(t *testing.T) {
	const max = 3
	h, _ := startAudited(t, fmt.Sprintf(`audit: {threshold_max: %d, reset_on_success: false}
process_recipes:
  counters.add:
    outputs: [{field: "domain.counters.{key}", max: 0, level: B}]
`, max), func(c *Config) { c.Workers = 8 })
	const calls = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed, blocked := 0, 0
	for i := range calls {
		wg.Go(func() {
			rep := h.exec(t, "counters.add", fmt.Sprintf(`{"key":"k%d"}`, i)) // disjoint keys: no conflicts
			mu.Lock()
			defer mu.Unlock()
			switch {
			case rep.Err == nil:
				committed++
			case rep.Err.Code == protocol.CodeAuditBlock:
				blocked++
			default:
				t.Error(rep.Err)
			}
		})
	}
	wg.Wait()
	if committed != max || blocked != calls-max {
		t.Fatalf("%d committed, %d blocked; want %d and %d", committed, blocked, max, calls-max)
	}
	if c := h.counts(t)["counters.add outputs[0]:domain.counters.{key}"]; c != calls {
		t.Fatalf("count %d, want %d", c, calls)
	}
}

// Bad bodies to the audit methods are bad_request and change nothing.
func TestAuditMethodsRefuseBadBodies(t *testing.T) {
	h, _ := startAudited(t, levelsRecipe, nil)
	h.wantCode(t, h.exec(t, "counters.add", `{"key":"b","by":5000}`), protocol.CodeAuditStop)
	for _, c := range []struct{ method, body string }{
		{protocol.MethodAuditLog, `{"n":"5"}`},
		{protocol.MethodAuditLog, `{"n":1.5}`},
		{protocol.MethodAuditLog, `{"n":-1}`},
		{protocol.MethodAuditLog, `{"count":5}`},
		{protocol.MethodAuditStatus, `{"verbose":true}`},
		{protocol.MethodAuditStatus, `[]`},
		{protocol.MethodAuditReload, `{"file":"/etc/passwd"}`},
		{protocol.MethodAuditResume, `{"process":["counters.add"]}`},
		{protocol.MethodAuditResume, `{"process":"counters.add","all":true}`},
		{protocol.MethodAuditResume, `{"process":"counters.add"} {}`},
	} {
		rep := h.s.Call(context.Background(), &protocol.Call{Method: c.method, Body: []byte(c.body)})
		if rep.Err == nil || rep.Err.Code != protocol.CodeBadRequest {
			t.Errorf("%s %s: %v", c.method, c.body, rep.Err)
		}
	}
	var st AuditStatus
	h.auditCall(t, protocol.MethodAuditStatus, struct{}{}, &st)
	if len(st.Stopped) != 1 || st.Recipe != 1 {
		t.Fatalf("a bad body changed the audit: %+v", st)
	}
	rep := h.s.Call(context.Background(), &protocol.Call{Method: protocol.MethodAuditResume, Body: []byte(`{"process":"nope"}`)})
	if rep.Err == nil || rep.Err.Code != protocol.CodeUnknownProcess {
		t.Fatalf("resume of an unknown process: %v", rep.Err)
	}
}

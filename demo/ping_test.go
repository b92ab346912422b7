package demo

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/theus-run/theus/worker/workertest"
)

func TestPing(t *testing.T) {
	ctx := context.Background()
	out, err := runDelta(ctx, t, "ping.send", map[string]any{"value": map[string]int{"n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out[PingSignal]); got != `{"n":1}` {
		t.Fatalf("ping.send wrote %s", got)
	}
	out, err = runDelta(ctx, t, "ping.send", nil)
	if err != nil || string(out[PingSignal]) != "null" {
		t.Fatalf("ping.send without a value: %s, %v", out[PingSignal], err)
	}
	out, err = runDelta(ctx, t, "ping.mark", map[string]any{"key": "a", "value": 7})
	if err != nil {
		t.Fatal(err)
	}
	if string(out[PingsPath+".a"]) != "7" || string(out[PingSignal]) != `{"key":"a","value":7}` {
		t.Fatalf("ping.mark wrote %q", out)
	}
	if _, err := runDelta(ctx, t, "ping.mark", map[string]any{"key": "a.b"}); err == nil {
		t.Fatal("ping.mark with a dotted key: no error")
	}
}

// runDelta runs a process with no inputs and returns its delta.
func runDelta(ctx context.Context, t *testing.T, name string, args any) (map[string]json.RawMessage, error) {
	t.Helper()
	out, err := workertest.Run(ctx, def(t, name), nil, args)
	if err != nil {
		return nil, err
	}
	return out.Delta(), nil
}

package supervisor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// fluxDir writes files (name → YAML) into a new directory.
func fluxDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runFlow(t *testing.T, c *client.Client, req flux.RunRequest) *flux.RunView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var v flux.RunView
	if err := c.Call(ctx, protocol.MethodFluxRun, req, &v); err != nil {
		t.Fatalf("flux.run %+v: %v", req, err)
	}
	return &v
}

func counter(t *testing.T, c *client.Client, key string) int64 {
	t.Helper()
	e, err := c.Get(context.Background(), "domain.counters."+key)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := json.Unmarshal(e.Entries[0].Value, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

const loopFlow = `
name: loop
steps:
  - process: counters.add
    args: {key: a}
  - flux: while
    condition: domain['counters']['a'] < 5
    do:
      - process: counters.add
        args: {key: a}
  - flux: if
    condition: domain.counters.get('a', 0) == 5 and args['mode'] == 'x'
    then:
      - process: counters.add
        args: {key: b, by: 10}
    else:
      - process: counters.add
        args: {key: b, by: 20}
  - process: bank.transfer
    args: {from: nobody, to: noone, amount: 5}
    on_fail:
      - process: counters.add
        args: {key: c}
      - flux: continue
`

func TestFluxRunEndToEnd(t *testing.T) {
	dir := fluxDir(t, map[string]string{"loop.yaml": loopFlow})
	h := start(t, 2, func(c *Config) { c.Flux = dir })
	c := h.dial(t)
	v := runFlow(t, c, flux.RunRequest{Name: "loop", Args: json.RawMessage(`{"mode":"x"}`)})
	if v.Status != flux.StatusComplete {
		t.Fatalf("run: %+v", v)
	}
	if a, b, cc := counter(t, c, "a"), counter(t, c, "b"), counter(t, c, "c"); a != 5 || b != 10 || cc != 1 {
		t.Fatalf("a=%d b=%d c=%d, want 5 10 1; run %+v", a, b, cc, v)
	}
	// 5 adds of a, 1 of b, the failed transfer, 1 add of c.
	if len(v.Steps) != 8 || v.Steps[6].Code == "" || v.Steps[7].Process != "counters.add" {
		t.Fatalf("steps: %+v", v.Steps)
	}
	for i, s := range v.Steps {
		if s.Code == "" && (s.Version == 0 || s.Attempts < 1) {
			t.Fatalf("step %d: %+v", i, s)
		}
	}
	st := runFlow(t, c, flux.RunRequest{Name: "loop", ID: v.Run, Args: json.RawMessage(`{"mode":"x"}`)})
	if st.Run != v.Run || len(st.Steps) != 8 {
		t.Fatalf("the same id again: %+v", st)
	}
	if a := counter(t, c, "a"); a != 5 {
		t.Fatalf("a start with the same id ran again: a=%d", a)
	}
}

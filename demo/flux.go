package demo

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/theus-run/theus/client"
)

// fluxFiles are the demo's workflow and machine, loaded by
// theus-supervisor --demo (WriteFlux).
//
//go:embed flux/*.yaml
var fluxFiles embed.FS

// WriteFlux writes the demo's workflow (demo_pipeline... see
// demo/flux/pipeline.yaml) and machine (door.yaml) into dir, for --flux.
func WriteFlux(dir string) error {
	entries, err := fs.ReadDir(fluxFiles, "flux")
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := fluxFiles.ReadFile("flux/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

// runFlux runs the demo workflow and drives the door machine through a
// cycle, when the supervisor has them loaded; it returns the invariants
// it checked, or none if they are not loaded.
func runFlux(ctx context.Context, c *client.Client, tag string, w func(format string, args ...any)) ([]string, error) {
	l, err := c.ListFlows(ctx)
	if err != nil {
		return nil, err
	}
	loaded := map[string]bool{}
	for _, f := range l.Workflows {
		loaded[f.Name] = true
	}
	if !loaded["pipeline"] || !loaded["door"] {
		return nil, nil
	}
	var checks []string
	const n = 20
	key := "flow_" + tag
	args, _ := json.Marshal(map[string]any{"key": key, "n": n})
	f, err := c.RunFlow(ctx, client.FlowRequest{Name: "pipeline", Args: args})
	if err != nil {
		return nil, err
	}
	if err := f.Err(); err != nil {
		return nil, fmt.Errorf("%w: workflow pipeline failed: %v", ErrInvariant, err)
	}
	got, err := readInt(ctx, c, CountersPath+"."+key)
	if err != nil {
		return nil, err
	}
	failed, err := readInt(ctx, c, CountersPath+"."+key+"_failed")
	if err != nil {
		return nil, err
	}
	if got != n || failed != 1 || len(f.Steps) != n+3 {
		return nil, fmt.Errorf("%w: workflow pipeline: counter %d (want %d), on_fail ran %d times (want 1), %d steps (want %d)", ErrInvariant, got, n, failed, len(f.Steps), n+3)
	}
	w("workflow pipeline   run %s: %s, %d ops, %d steps committed one transaction each (the last at version %d)\n", f.Run, f.Status, f.Ops, len(f.Steps)-1, f.Version)
	checks = append(checks, fmt.Sprintf("workflow pipeline: counter = %d after its while loop, the failing transfer caught by on_fail", got))

	margs, _ := json.Marshal(map[string]any{"key": "door_" + tag})
	m, err := c.StartMachine(ctx, "door", "door_"+tag, margs)
	if err != nil {
		return nil, err
	}
	for _, ev := range []struct{ event, want string }{{"domain.door.cmd_open", "open"}, {"domain.door.cmd_close", "closed"}} {
		if _, err := c.SendEvent(ctx, m.ID, ev.event); err != nil {
			return nil, err
		}
		if m, err = waitMachine(ctx, c, m.ID, ev.want); err != nil {
			return nil, err
		}
	}
	opened, err := readInt(ctx, c, CountersPath+".door_"+tag)
	if err != nil {
		return nil, err
	}
	path := m.History[0].From
	for _, t := range m.History {
		path += " → " + t.To
	}
	w("machine door        %s: %s (%d transitions, the last at version %d)\n", m.ID, path, len(m.History), m.History[len(m.History)-1].Version)
	if opened != 1 || m.State != "closed" {
		return nil, fmt.Errorf("%w: machine door: opened %d times, in state %s", ErrInvariant, opened, m.State)
	}
	checks = append(checks, "machine door: closed → opening → open → closed, its entry block run once")
	return checks, nil
}

// waitMachine polls machine id until it is in state (a state's entry
// block runs after the transition into it).
func waitMachine(ctx context.Context, c *client.Client, id, state string) (*client.Machine, error) {
	for deadline := time.Now().Add(30 * time.Second); ; {
		m, err := c.MachineStatus(ctx, id)
		if err != nil {
			return nil, err
		}
		if m.State == state {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: machine %s stayed in %s, never reached %s", ErrInvariant, id, m.State, state)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

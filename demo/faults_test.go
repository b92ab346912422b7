package demo

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
	"github.com/theus-run/theus/worker/workertest"
)

func names(defs []worker.Def) []string {
	var out []string
	for _, d := range defs {
		out = append(out, d.Name)
	}
	return out
}

// TestServed: a demo worker serves the fault.* processes only when its
// supervisor says so (theus-supervisor --faults sets EnvFaults to 1).
func TestServed(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		faults bool
	}{
		{name: "unset", env: nil},
		{name: "off", env: envOf(FaultsEnv(false))},
		{name: "other value", env: map[string]string{EnvFaults: "true"}},
		{name: "on", env: envOf(FaultsEnv(true)), faults: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(Served(func(k string) string { return tt.env[k] }))
			hasFault := slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, "fault.") })
			if hasFault != tt.faults {
				t.Fatalf("served %v: fault.* served = %v, want %v", got, hasFault, tt.faults)
			}
			want := names(Processes())
			if tt.faults {
				want = append(want, names(Faults())...)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("served %v, want %v", got, want)
			}
		})
	}
	for _, n := range names(Processes()) {
		if strings.HasPrefix(n, "fault.") {
			t.Errorf("%s is served by default", n)
		}
	}
	for _, n := range names(Faults()) {
		if !strings.HasPrefix(n, "fault.") {
			t.Errorf("Faults returns %s", n)
		}
	}
}

// envOf turns a KEY=VALUE entry into a map.
func envOf(kv string) map[string]string {
	k, v, _ := strings.Cut(kv, "=")
	return map[string]string{k: v}
}

func TestUndeclaredWriteIsRejected(t *testing.T) {
	_, err := workertest.Run(context.Background(), def(t, "fault.undeclared"), nil, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeContractViolation || pe.Path != "domain.forbidden" {
		t.Fatalf("err = %#v, want a contract violation naming domain.forbidden", err)
	}
}

// TestSleepBounds: fault.sleep refuses a length that is negative or does
// not fit a time.Duration (it wrapped to a negative sleep).
func TestSleepBounds(t *testing.T) {
	for _, ms := range []int64{-1, maxSleepMS + 1, math.MaxInt64} {
		if _, err := workertest.Run(context.Background(), def(t, "fault.sleep"), nil, SleepArgs{MS: ms}); !errors.Is(err, protocol.ErrBadArgs) {
			t.Errorf("sleep %d ms: err = %v, want bad_args", ms, err)
		}
	}
	if _, err := workertest.Run(context.Background(), def(t, "fault.sleep"), nil, SleepArgs{MS: 1}); err != nil {
		t.Fatal(err)
	}
}

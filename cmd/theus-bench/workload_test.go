package main

import (
	"strings"
	"testing"
)

// The end-of-run check: counters moved by exactly the successful adds
// (the hot one for counter, this run's keys for counter-spread, others'
// keys ignored), and the run's accounts all there, none negative, the
// total kept.
func TestCheck(t *testing.T) {
	p := "b1_"
	counters := func(m map[string]int64) state { return state{counters: m} }
	balances := func(m map[string]int64) state { return state{balances: m} }
	for _, tc := range []struct {
		name          string
		w             *workload
		before, after state
		adds          int64
		fails         string // "" for a pass
	}{
		{"hot counter", &workload{name: "counter", prefix: p}, counters(map[string]int64{"": 5}), counters(map[string]int64{"": 8}), 3, ""},
		{"hot counter, an add lost", &workload{name: "counter", prefix: p}, counters(map[string]int64{"": 5}), counters(map[string]int64{"": 7}), 3, "lost or doubled"},
		{"spread counters", &workload{name: "counter-spread", prefix: p},
			counters(map[string]int64{p + "k1": 1, "other_k1": 0, "": 0}),
			counters(map[string]int64{p + "k1": 3, p + "k2": 1, "other_k1": 100, "": 50}), 3, ""},
		{"spread counters, an add doubled", &workload{name: "counter-spread", prefix: p},
			counters(map[string]int64{p + "k1": 1}), counters(map[string]int64{p + "k1": 3, p + "k2": 2}), 3, "lost or doubled"},
		{"bank", &workload{name: "bank", prefix: p, accounts: 2, balance: 10}, state{},
			balances(map[string]int64{p + "a0": 5, p + "a1": 15, "other_a0": -3}), 0, ""},
		{"bank, overdrawn", &workload{name: "bank", prefix: p, accounts: 2, balance: 10}, state{},
			balances(map[string]int64{p + "a0": -1, p + "a1": 21}), 0, "holds -1"},
		{"bank, money made", &workload{name: "bank", prefix: p, accounts: 2, balance: 10}, state{},
			balances(map[string]int64{p + "a0": 5, p + "a1": 16}), 0, "hold 21, want 2 holding 20"},
		{"bank, an account gone", &workload{name: "bank", prefix: p, accounts: 2, balance: 10}, state{},
			balances(map[string]int64{p + "a1": 20}), 0, "1 accounts hold 20"},
		{"noop", &workload{name: "noop", prefix: p}, state{}, state{}, 0, ""},
	} {
		_, err := tc.w.check(tc.before, tc.after, tc.adds)
		switch {
		case tc.fails == "" && err != nil:
			t.Errorf("%s: %v, want a pass", tc.name, err)
		case tc.fails != "" && (err == nil || !strings.Contains(err.Error(), tc.fails)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.fails)
		}
	}
}

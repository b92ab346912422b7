package main

import "testing"

func TestParseHostTimes(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want hostTimes
		ok   bool
	}{
		{"cpu  100 5 50 800 20 3 2 40 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n", hostTimes{busy: 160, idle: 820, steal: 40}, true},
		{"cpu  1 2 3 4 5 6 7 8\n", hostTimes{busy: 1 + 2 + 3 + 6 + 7, idle: 9, steal: 8}, true}, // an old kernel: no guest times
		{"cpu0 1 2 3 4 5 6 7 8\n", hostTimes{}, false},                                          // not the total
		{"cpu  1 2 3 4 5 6 7\n", hostTimes{}, false},                                            // too few
		{"cpu  1 2 3 -4 5 6 7 8\n", hostTimes{}, false},                                         // not a count
		{"", hostTimes{}, false},
	} {
		got, err := parseHostTimes(tc.stat)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseHostTimes(%q) = %+v, %v; want %+v, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
	if _, err := readHostTimes(); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}

func TestHostShare(t *testing.T) {
	a := hostTimes{busy: 100, idle: 100, steal: 10}
	got, ok := a.share(hostTimes{busy: 150, idle: 130, steal: 30})
	if want := (hostCPU{Busy: 0.5, Idle: 0.3, Steal: 0.2}); !ok || got != want {
		t.Errorf("share = %+v, %v; want %+v", got, ok, want)
	}
	for _, b := range []hostTimes{a, {busy: 99, idle: 200, steal: 20}} {
		if got, ok := a.share(b); ok {
			t.Errorf("share to %+v = %+v, want none (no time, or counters back)", b, got)
		}
	}
}

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// hostTimes are the machine's CPU times from /proc/stat's "cpu" line, in
// clock ticks summed over the CPUs.
type hostTimes struct {
	busy, idle, steal uint64 // busy: user, nice, system, irq, softirq; idle: idle, iowait
}

// readHostTimes reads /proc/stat.
func readHostTimes() (hostTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostTimes{}, err
	}
	return parseHostTimes(string(b))
}

// parseHostTimes reads the first line of /proc/stat: "cpu" then user,
// nice, system, idle, iowait, irq, softirq, steal (guest time is in user
// already).
func parseHostTimes(stat string) (hostTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return hostTimes{}, errors.New("/proc/stat: no cpu line with 8 times")
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return hostTimes{}, fmt.Errorf("/proc/stat: cpu line: %w", err)
		}
		v[i] = n
	}
	return hostTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7]}, nil
}

// hostCPU is how the machine's CPUs spent a run: the shares of their
// time busy (anything), idle and stolen by the hypervisor (a virtual
// machine's vCPU that was ready to run but did not). A run with steal
// measured a machine shared with others: its speed is theirs as much as
// ours (docs/BENCHMARKS.md, "Stolen time").
type hostCPU struct {
	Busy  float64 `json:"busy"`
	Idle  float64 `json:"idle"`
	Steal float64 `json:"steal"`
}

// share is what happened between two readings, or false when the
// counters did not move forward.
func (a hostTimes) share(b hostTimes) (hostCPU, bool) {
	if b.busy < a.busy || b.idle < a.idle || b.steal < a.steal {
		return hostCPU{}, false
	}
	busy, idle, steal := b.busy-a.busy, b.idle-a.idle, b.steal-a.steal
	total := float64(busy + idle + steal)
	if total == 0 {
		return hostCPU{}, false
	}
	return hostCPU{Busy: round3(float64(busy) / total), Idle: round3(float64(idle) / total), Steal: round3(float64(steal) / total)}, true
}

// stealText is h's steal as a percentage, "?" when unknown.
func stealText(h *hostCPU) string {
	if h == nil {
		return "?"
	}
	return strconv.FormatFloat(h.Steal*100, 'f', 0, 64) + "%"
}

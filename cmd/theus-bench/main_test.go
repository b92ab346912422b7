package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/worker"
)

func TestMain(m *testing.M) {
	if worker.Launched() {
		worker.Main(demo.Processes()...) // the own supervisor's worker
	}
	if pluginLaunched() {
		servePlugin()
		os.Exit(0)
	}
	race.SkipExitSleep() // this binary, started as the workers and the plugin
	os.Exit(m.Run())
}

// The smoke run CI does: a few seconds of each kind of workload against
// a supervisor the bench starts, and of the go-plugin peer; each must
// write valid JSON (with the machine and the command) and decodable PNG
// plots, pass its end-of-run check and fail nothing. It asserts no speed.
func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	runs := [][]string{
		{"--workload", "noop", "--duration", "1s"},
		{"--workload", "counter", "--requests", "300", "--duration", "0"},
		{"--workload", "noop", "--requests", "40", "--duration", "0", "--pause", "5ms", "--worker-poll", "0"},
		{"--workload", "counter-spread", "--duration", "1s", "--keys", "16"},
		{"--workload", "bank", "--duration", "1s", "--accounts", "8"},
		{"--workload", "tensor", "--duration", "1s", "--tensor-size", "64KiB"},
		{"--workload", "mix", "--duration", "1s", "--keys", "16", "--accounts", "8"},
		{"--workload", "spin", "--duration", "1s", "--spin-us", "200"},
		{"--workload", "bank", "--duration", "1s", "--accounts", "8", "--target", "goplugin-rpc"},
		{"--workload", "noop", "--duration", "1s", "--target", "goplugin-grpc"},
	}
	for _, args := range runs {
		name := strings.Join(args, " ")
		t.Run(name, func(t *testing.T) {
			var out, errs bytes.Buffer
			args := append([]string{"--workers", "2", "--clients", "2", "--depth", "2", "--durability", "none", "--out", dir, "--name", "r"}, args...)
			if code := run(args, &out, &errs); code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errs.String())
			}
			b, err := os.ReadFile(filepath.Join(dir, "r.json"))
			if err != nil {
				t.Fatal(err)
			}
			var r result
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("the results are not JSON: %v", err)
			}
			if r.Requests == 0 || r.Errors != 0 || !r.Check.OK || r.Machine.CPUs == 0 || len(r.Command) < 2 || len(r.Timeline) == 0 || r.Latency.P50 <= 0 {
				t.Fatalf("results: %d requests, %d errors %v, check %+v, machine %+v, command %v, %d timeline points, p50 %d",
					r.Requests, r.Errors, r.ErrorSample, r.Check, r.Machine, r.Command, len(r.Timeline), r.Latency.P50)
			}
			if r.Host == nil || r.Host.Busy+r.Host.Idle+r.Host.Steal < 0.99 {
				t.Fatalf("the machine's CPU over the run: %+v", r.Host)
			}
			if !strings.Contains(out.String(), "  steal ") {
				t.Fatalf("the output does not give the steal: %s", out.String())
			}
			if strings.Contains(name, "--pause 5ms") && (r.Elapsed < 0.04 || r.Config.Pause != "5ms") {
				t.Fatalf("40 requests by 4 callers resting 5ms after each took %.3fs (config %+v): the pause was not taken", r.Elapsed, r.Config)
			}
			for _, plot := range []string{"r-latency.png", "r-throughput.png", "r-retries.png"} {
				f, err := os.Open(filepath.Join(dir, plot))
				if err != nil {
					t.Fatal(err)
				}
				_, err = png.Decode(f)
				f.Close()
				if err != nil {
					t.Fatalf("%s: %v", plot, err)
				}
			}
			os.Rename(filepath.Join(dir, "r.json"), filepath.Join(dir, strings.NewReplacer(" ", "_", "-", "").Replace(name)+".json"))
		})
	}
	var out bytes.Buffer
	if code := run([]string{"report", dir}, &out, &out); code != 0 || !strings.Contains(out.String(), "goplugin-rpc") {
		t.Fatalf("report: exit %d\n%s", code, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "compare-throughput.png")); err != nil {
		t.Fatal(err)
	}
}

// Bad flags are refused before anything starts.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--workload", "nope"},
		{"--duration", "0"},
		{"--clients", "0"},
		{"--tensor-size", "3"},
		{"--target", "mysql"},
		{"--pause", "-1ms"},
		{"--worker-poll", "2ms"},
		{"--worker-poll", "300ns"},
		{"--target", "etcd", "--workload", "noop", "--etcd", "127.0.0.1:1"},
	} {
		var out, errs bytes.Buffer
		if code := run(append(args, "--out", t.TempDir()), &out, &errs); code == 0 || errs.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs.String())
		}
	}
}

// TestSampleShortRun: a run over before the timeline's first tick still
// gets one point, with everything it did.
func TestSampleShortRun(t *testing.T) {
	var c counters
	c.requests.Store(300)
	stop := make(chan struct{})
	close(stop)
	pts := sample(&c, time.Now(), limits{interval: 250 * time.Millisecond}, stop)
	if len(pts) != 1 || pts[0].Requests != 300 {
		t.Fatalf("timeline %+v, want one point of 300 requests", pts)
	}
}

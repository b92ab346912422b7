package main

import (
	"math"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// result is one run, as theus-bench writes it (<name>.json).
type result struct {
	Tool        string   `json:"tool"`
	Version     string   `json:"version"`
	Command     []string `json:"command"`
	Machine     machine  `json:"machine"`
	Target      string   `json:"target"`
	Server      string   `json:"server"` // what answered, with its version
	Workload    string   `json:"workload"`
	Config      config   `json:"config"`
	Started     string   `json:"started"`
	Elapsed     float64  `json:"elapsed_s"`
	Requests    int64    `json:"requests"`
	Errors      int64    `json:"errors"`
	ErrorSample []string `json:"error_sample,omitempty"`
	// Insufficient counts transfers refused for lack of funds: answers,
	// not failures.
	Insufficient      int64              `json:"insufficient_funds"`
	Throughput        float64            `json:"throughput_rps"`
	Latency           latency            `json:"latency_us"`
	ByOp              map[string]latency `json:"latency_by_op_us,omitempty"`
	Percentiles       []percentile       `json:"percentiles_us"`
	Retries           int64              `json:"retries"`
	RetriesPerRequest float64            `json:"retries_per_request"`
	VIP               int64              `json:"vip"`
	Timeline          []point            `json:"timeline"`
	Check             check              `json:"check"`
	CPU               *cpuSummary        `json:"cpu_profile,omitempty"` // --cpu-profile
	Host              *hostCPU           `json:"host_cpu,omitempty"`    // the machine's CPUs over the run (/proc/stat)
	adds              int64
}

type machine struct {
	CPU       string  `json:"cpu"`
	CPUs      int     `json:"cpus"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	GOOS      string  `json:"goos"`
	GOARCH    string  `json:"goarch"`
	Go        string  `json:"go"`
}

type config struct {
	Clients     int     `json:"clients"`
	Depth       int     `json:"depth"`
	Pause       string  `json:"pause,omitempty"`
	Workers     int     `json:"workers,omitempty"`
	WorkerProcs int     `json:"worker_gomaxprocs,omitempty"`
	WorkerPoll  string  `json:"worker_poll,omitempty"`
	Durability  string  `json:"durability,omitempty"`
	Duration    float64 `json:"duration_s,omitempty"`
	Requests    int64   `json:"requests_cap,omitempty"`
	Socket      string  `json:"socket,omitempty"`
	Keys        int     `json:"keys,omitempty"`
	Accounts    int     `json:"accounts,omitempty"`
	TensorSize  int64   `json:"tensor_bytes,omitempty"`
	SpinUS      int     `json:"spin_us,omitempty"`
}

type latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
}

type percentile struct {
	Q  float64 `json:"q"`
	US int64   `json:"us"`
}

// point is one interval of the timeline: what happened during it.
type point struct {
	T        float64 `json:"t_s"` // the interval's end, from the start
	Requests int64   `json:"requests"`
	Rate     float64 `json:"rps"`
	Errors   int64   `json:"errors"`
	Retries  int64   `json:"retries"`
	VIP      int64   `json:"vip"`
}

type check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func summarize(h *hdrhistogram.Histogram) latency {
	return latency{Count: h.TotalCount(), Mean: math.Round(h.Mean()*10) / 10, P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
}

// percentiles samples the distribution for the latency plot.
func percentiles(h *hdrhistogram.Histogram) []percentile {
	var out []percentile
	if h.TotalCount() == 0 {
		return out
	}
	for _, q := range []float64{0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100} {
		out = append(out, percentile{Q: q, US: h.ValueAtQuantile(q)})
	}
	return out
}

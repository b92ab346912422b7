package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func reportCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "report DIR",
		Short: "Print a table of the runs in DIR (*.json), with each peer's throughput as a ratio to theus on the same workload, and plot them side by side",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			rs, err := load(pos[0])
			if err != nil {
				return err
			}
			if len(rs) == 0 {
				return fmt.Errorf("no results (*.json) in %s", pos[0])
			}
			table(stdout, rs)
			if err := comparePlot(rs, filepath.Join(pos[0], "compare-throughput.png")); err != nil {
				return err
			}
			byWorkload := map[string][]*result{}
			for _, r := range rs {
				g := r.Workload
				if r.Workload == "tensor" {
					g += "-" + bytesLabel(r.Config.TensorSize)
				}
				g += fmt.Sprintf("-%dx%d", r.Config.Clients, r.Config.Depth)
				byWorkload[g] = append(byWorkload[g], r)
			}
			for g, group := range byWorkload {
				if err := latencyPlot(group, filepath.Join(pos[0], "compare-"+g+"-latency.png")); err != nil {
					return err
				}
			}
			fmt.Fprintf(stdout, "\nplots: %s\n", filepath.Join(pos[0], "compare-*.png"))
			return nil
		},
	}
}

// load reads every result in dir, ordered by workload, then theus first.
func load(dir string) ([]*result, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var rs []*result
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r := new(result)
		if err := json.Unmarshal(b, r); err != nil || r.Tool != "theus-bench" {
			continue // not a result of ours
		}
		rs = append(rs, r)
	}
	order := func(w string) int { return slices.Index(workloads, w) }
	slices.SortStableFunc(rs, func(a, b *result) int {
		return cmp.Or(cmp.Compare(order(a.Workload), order(b.Workload)), cmp.Compare(a.Config.TensorSize, b.Config.TensorSize),
			cmp.Compare(a.Config.Clients*a.Config.Depth, b.Config.Clients*b.Config.Depth),
			cmp.Compare(targetRank(a.Target), targetRank(b.Target)))
	})
	return rs, nil
}

func targetRank(t string) int {
	if t == "theus" {
		return 0
	}
	return 1
}

// targetName tells apart theus runs of different durability.
func targetName(r *result) string {
	if r.Target == "theus" && r.Config.Durability != "" {
		return "theus/" + r.Config.Durability
	}
	return r.Target
}

// baseline picks the theus run a peer's run is compared with: the same
// workload and concurrency, and the durability the peer has (etcd
// fsyncs every commit; the others keep state in memory).
func baseline(runs map[string]map[string]float64, key, peer string) (float64, bool) {
	byDur := runs[key]
	want := "none"
	if peer == "etcd" {
		want = "sync"
	}
	if v, ok := byDur[want]; ok {
		return v, true
	}
	for _, v := range byDur {
		return v, true
	}
	return 0, false
}

func table(w io.Writer, rs []*result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\ttarget\tin flight\treq/s\ttheus / this\tp50 µs\tp99 µs\tretries/req\tVIP\terrors\tcheck\tsteal\t")
	key := func(r *result) string {
		return fmt.Sprintf("%s %d %d", what(r), r.Config.Clients, r.Config.Depth)
	}
	theus := map[string]map[string]float64{}
	for _, r := range rs {
		if r.Target == "theus" {
			if theus[key(r)] == nil {
				theus[key(r)] = map[string]float64{}
			}
			theus[key(r)][r.Config.Durability] = r.Throughput
		}
	}
	for _, r := range rs {
		ratio := ""
		if b, ok := baseline(theus, key(r), r.Target); ok && r.Target != "theus" && r.Throughput > 0 {
			ratio = fmt.Sprintf("%.2fx", b/r.Throughput)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d×%d\t%.0f\t%s\t%d\t%d\t%.2f\t%d\t%d\t%s\t%s\t\n", what(r), targetName(r), r.Config.Clients, r.Config.Depth,
			r.Throughput, ratio, r.Latency.P50, r.Latency.P99, r.RetriesPerRequest, r.VIP, r.Errors, okText(r.Check.OK), stealText(r.Host))
	}
	tw.Flush()
}

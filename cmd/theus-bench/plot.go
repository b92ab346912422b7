package main

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// The plots of one run: latency percentiles, throughput over time, and
// retries and VIP commits over time. Each returns the file it wrote.

// nines maps a percentile to the x of the latency plot: 0 for p0, 1 for
// p90, 2 for p99, 3 for p99.9...
func nines(q float64) float64 {
	if q >= 100 {
		q = 99.9999
	}
	return -math.Log10(1 - q/100)
}

type ninesTicks struct{}

func (ninesTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for _, q := range []float64{0, 50, 90, 99, 99.9, 99.99, 99.999} {
		if x := nines(q); x >= min && x <= max {
			ts = append(ts, plot.Tick{Value: x, Label: fmt.Sprintf("p%g", q)})
		}
	}
	return ts
}

func latencyPlot(rs []*result, file string) error {
	p := plot.New()
	p.Title.Text = "latency by percentile"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (µs)"
	p.X.Tick.Marker = ninesTicks{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	for i, r := range rs {
		var xys plotter.XYs
		for _, pc := range r.Percentiles {
			xys = append(xys, plotter.XY{X: nines(pc.Q), Y: float64(max(pc.US, 1))})
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		p.Add(l)
		p.Legend.Add(label(r), l)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p.Save(8*vg.Inch, 5*vg.Inch, file)
}

// label names a run in legends: target and what.
func label(r *result) string { return targetName(r) + " " + what(r) }

// what is a run's workload, with the tensor size for tensor runs.
func what(r *result) string {
	if r.Workload == "tensor" {
		return r.Workload + " " + bytesLabel(r.Config.TensorSize)
	}
	return r.Workload
}

func timelinePlot(r *result, file string) error {
	p := plot.New()
	p.Title.Text = "throughput over time: " + label(r)
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "requests/s"
	var xys plotter.XYs
	for _, pt := range r.Timeline {
		xys = append(xys, plotter.XY{X: pt.T, Y: pt.Rate})
	}
	if len(xys) == 0 {
		xys = plotter.XYs{{X: 0, Y: 0}}
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	p.Add(l)
	p.Y.Min = 0
	return p.Save(8*vg.Inch, 4*vg.Inch, file)
}

func retriesPlot(r *result, file string) error {
	p := plot.New()
	p.Title.Text = "retries and VIP commits over time: " + label(r)
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "per second"
	var retries, vip plotter.XYs
	prev := 0.0
	for _, pt := range r.Timeline {
		dt := pt.T - prev
		prev = pt.T
		if dt <= 0 {
			continue
		}
		retries = append(retries, plotter.XY{X: pt.T, Y: float64(pt.Retries) / dt})
		vip = append(vip, plotter.XY{X: pt.T, Y: float64(pt.VIP) / dt})
	}
	if len(retries) == 0 {
		retries, vip = plotter.XYs{{}}, plotter.XYs{{}}
	}
	for i, s := range []struct {
		name string
		xys  plotter.XYs
	}{{"retries/s", retries}, {"VIP commits/s", vip}} {
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Y.Min = 0
	p.Legend.Top = true
	return p.Save(8*vg.Inch, 4*vg.Inch, file)
}

// comparePlot draws throughput per workload, one bar per target.
func comparePlot(rs []*result, file string) error {
	var groups []string // workload labels, in first-seen order
	var targets []string
	val := map[[2]string]float64{}
	for _, r := range rs {
		g := r.Workload
		if r.Workload == "tensor" {
			g += " " + bytesLabel(r.Config.TensorSize)
		}
		g += fmt.Sprintf(" %d×%d", r.Config.Clients, r.Config.Depth)
		if !contains(groups, g) {
			groups = append(groups, g)
		}
		if !contains(targets, targetName(r)) {
			targets = append(targets, targetName(r))
		}
		val[[2]string{g, targetName(r)}] = r.Throughput
	}
	p := plot.New()
	p.Title.Text = "throughput by workload"
	p.Y.Label.Text = "requests/s"
	w := vg.Points(float64(60) / float64(max(len(targets), 1)))
	for i, tg := range targets {
		vs := make(plotter.Values, len(groups))
		for j, g := range groups {
			vs[j] = val[[2]string{g, tg}]
		}
		b, err := plotter.NewBarChart(vs, w)
		if err != nil {
			return err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(targets)-1)/2)
		p.Add(b)
		p.Legend.Add(tg, b)
	}
	p.NominalX(groups...)
	p.Legend.Top = true
	return p.Save(vg.Length(max(8, 1.2*float64(len(groups))))*vg.Inch, 5*vg.Inch, file)
}

func bytesLabel(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

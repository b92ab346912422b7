package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/protocol"
)

// topCmd is theusctl top: the supervisor's workers, per-process rates
// and latencies, conflicts and VIP tickets, refreshed every second, until
// q or Ctrl-C.
func (a *app) topCmd() *cobra.Command {
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show the workers, per-process rates and latencies, conflicts and VIP tickets, refreshed every second; q or Ctrl-C quits",
		Long: "Rates and latencies are over the last refresh (p50 and p99 from the supervisor's latency histograms), from the same " +
			"counters as theusctl status and /metrics. It needs a terminal; for a script, use the stats of /api/stats or theusctl status -o json.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if every < 100*time.Millisecond {
				return fmt.Errorf("top: --every %s: want at least 100ms", every)
			}
			f, ok := a.stdout.(*os.File)
			if !ok || !term.IsTerminal(int(f.Fd())) || !term.IsTerminal(int(os.Stdin.Fd())) {
				return errors.New("top: needs a terminal (stdin and stdout); for scripts use theusctl status -o json")
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			p := tea.NewProgram(&topModel{c: c, every: every}, tea.WithInput(os.Stdin), tea.WithOutput(f))
			if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrInterrupted) {
				return fmt.Errorf("top: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&every, "every", time.Second, "how often to refresh")
	return cmd
}

// topModel is top's state: the last two Stats, their difference is the
// rates.
type topModel struct {
	c             *client.Client
	every         time.Duration
	prev, cur     *client.Stats
	err           error
	width, height int
}

type (
	statsMsg struct {
		st  *client.Stats
		err error
	}
	tickMsg struct{}
)

func (m *topModel) fetch() tea.Msg {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := m.c.Stats(ctx)
	return statsMsg{st, err}
}

func (m *topModel) Init() tea.Cmd { return m.fetch }

func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		}
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case statsMsg:
		m.err = msg.err
		if msg.err == nil {
			m.prev, m.cur = m.cur, msg.st
		}
		return m, tea.Tick(m.every, func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		return m, m.fetch
	}
	return m, nil
}

func (m *topModel) View() tea.View {
	v := tea.NewView(m.text())
	v.AltScreen = true // the screen is given back as it was on exit
	return v
}

// text is the screen's content.
func (m *topModel) text() string {
	var b strings.Builder
	line := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		if m.width > 0 && len([]rune(s)) > m.width {
			s = string([]rune(s)[:m.width])
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	st := m.cur
	if st == nil {
		if m.err != nil {
			line("theus top: %v", m.err)
		} else {
			line("theus top: connecting…")
		}
		line("q: quit")
		return b.String()
	}
	prev := m.prev
	if prev == nil {
		prev = &client.Stats{Time: st.Started}
	}
	secs := st.Time.Sub(prev.Time).Seconds()
	per := func(now, before uint64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(now-before) / secs
	}
	up := st.Time.Sub(st.Started).Truncate(time.Second)
	line("\x1b[1mtheus top\x1b[0m  version %s  %s mode  up %s  clients %d  %s", humanize.Comma(int64(st.Version)), st.Mode, up, st.Clients, st.Time.Local().Format("15:04:05"))
	if m.err != nil {
		line("\x1b[31mlast refresh failed: %v\x1b[0m", m.err)
	}
	commits, conflicts := per(st.Commits, prev.Commits), per(st.Conflicts, prev.Conflicts)
	ratio := 0.0
	if commits > 0 {
		ratio = conflicts / commits
	}
	var executes float64
	for i, p := range st.Processes {
		executes += per(p.Total(), processAt(prev, i, p.Name).Total())
	}
	line("executes %s/s  commits %s/s  conflicts %s/s (%.2f per commit)  failures %s/s  dispatch queue %d",
		rate(executes), rate(commits), rate(conflicts), ratio, rate(per(st.Failures, prev.Failures)), st.DispatchQueue)
	t := st.Tickets
	line("VIP tickets: held %d  granted %s (%s/s)  commits under one %s  commits that waited %s  expired %d  revoked %d",
		t.Held, humanize.Comma(int64(t.Granted)), rate(per(t.Granted, prev.Tickets.Granted)), humanize.Comma(int64(st.VIP)), humanize.Comma(int64(t.GateWaits)), t.Expired, t.Revoked)
	j := st.Journal
	if j.Mode == "none" {
		line("durability none: memory only")
	} else {
		line("durability %s: on disk up to %s (%d behind)  %.1f commits per fsync  fsync p99 %s", j.Mode, humanize.Comma(int64(j.Durable)), st.Version-j.Durable,
			float64(j.Commits)/math.Max(1, float64(j.Batches)), seconds(j.Fsync.Sub(prev.Journal.Fsync).Quantile(0.99)))
	}
	line("")
	line("\x1b[7m%-24s %10s %8s %9s %9s %12s\x1b[0m", "PROCESS", "EXEC/S", "ERR/S", "P50", "P99", "TOTAL")
	idle := 0
	for i, p := range st.Processes {
		if p.Total() == 0 {
			idle++
			continue
		}
		before := processAt(prev, i, p.Name)
		ok := p.Outcomes["ok"] + p.Outcomes["duplicate"] - before.Outcomes["ok"] - before.Outcomes["duplicate"]
		n := p.Total() - before.Total()
		lat := p.Latency.Sub(before.Latency)
		line("%-24s %10s %8s %9s %9s %12s", clip(p.Name, 24), rate(per(p.Total(), before.Total())), rate(float64(n-ok)/math.Max(secs, 1e-9)),
			seconds(lat.Quantile(0.5)), seconds(lat.Quantile(0.99)), humanize.Comma(int64(p.Total())))
	}
	if idle > 0 {
		line("(%d processes have not run)", idle)
	}
	line("")
	line("\x1b[7m%-5s %-8s %-9s %9s %12s %9s %10s  %s\x1b[0m", "SLOT", "PID", "STATE", "IN FLIGHT", "PROCESSED", "RESTARTS", "RSS", "PLUGIN")
	for _, w := range st.Workers {
		line("%-5d %-8d %-9s %9d %12s %9d %10s  %s", w.Slot, w.PID, w.State, w.InFlight, humanize.Comma(int64(w.Processed)), w.Restarts, humanize.IBytes(uint64(w.RSS)), w.Plugin)
	}
	line("")
	line("q: quit")
	out := b.String()
	if m.height > 0 {
		if lines := strings.SplitAfter(out, "\n"); len(lines) > m.height {
			out = strings.Join(lines[:m.height], "")
		}
	}
	return out
}

// processAt is the process named name in st, where it was at index i
// (the list is sorted and fixed after the start), or an empty one.
func processAt(st *client.Stats, i int, name string) protocol.ProcessStats {
	if i < len(st.Processes) && st.Processes[i].Name == name {
		return st.Processes[i]
	}
	for _, p := range st.Processes {
		if p.Name == name {
			return p
		}
	}
	return protocol.ProcessStats{}
}

// rate prints a per-second rate.
func rate(r float64) string {
	switch {
	case r >= 100:
		return humanize.Comma(int64(math.Round(r)))
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// seconds prints a latency in seconds, "-" for NaN (nothing observed).
func seconds(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return shortDuration(time.Duration(s * 1e9))
}

// Command theusctl talks to a running theus-supervisor: exec runs a
// process, get reads the Context, status shows the workers and counters,
// snapshot save writes a backup of the DATA zone, outbox pull and ack
// take the messages processes emitted, audit inspects and steers the
// audit recipe, log prints the commit log and top shows the supervisor
// live.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/protocol"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

type app struct {
	socket string
	output string
	stdout io.Writer
	stderr io.Writer
}

// run executes theusctl with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "theusctl",
		Short:         "Run processes on, and read the state of, a theus supervisor",
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&a.socket, "socket", "", "supervisor socket (default $THEUS_SOCKET, else $XDG_RUNTIME_DIR/theus/theus.sock, else /tmp/theus-<uid>/theus.sock)")
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "text", "output format: text or json (json also reports errors on stdout)")
	root.AddCommand(a.execCmd(), a.getCmd(), a.statusCmd(), a.snapshotCmd(), a.fluxCmd(), a.fsmCmd())
	root.AddCommand(a.outboxCmd())
	root.AddCommand(a.watchCmd(), a.signalCmd())
	root.AddCommand(a.auditCmd())
	root.AddCommand(a.logCmd(), a.topCmd())
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		if !errors.Is(err, errShown) {
			a.fail(err)
		}
		return 1
	}
	return 0
}

// fail reports err: on stderr, and with -o json also as an object on
// stdout.
func (a *app) fail(err error) {
	fmt.Fprintln(a.stderr, "theusctl:", err)
	if a.output != "json" {
		return
	}
	code := "error"
	var pe *protocol.Error
	if errors.As(err, &pe) {
		code = pe.Code
	}
	out := map[string]any{"ok": false, "code": code, "error": err.Error()}
	if pe != nil && pe.Path != "" {
		out["path"] = pe.Path
	}
	json.NewEncoder(a.stdout).Encode(out)
}

func (a *app) dial() (*client.Client, error) {
	if a.output != "text" && a.output != "json" {
		return nil, fmt.Errorf("-o %q: want text or json", a.output)
	}
	return client.Dial(a.socket)
}

func (a *app) execCmd() *cobra.Command {
	var args, id string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "exec PROCESS",
		Short: "Run a process until it commits; print {ok, version, attempts, vip, result, mode}",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, pos []string) error {
			var raw json.RawMessage
			if args != "" {
				if !json.Valid([]byte(args)) {
					return fmt.Errorf("exec %s: --args is not valid JSON: %s", pos[0], args)
				}
				raw = json.RawMessage(args)
			}
			if id == "auto" {
				id = client.NewOpID()
			}
			if cmd.Flags().Changed("timeout") && timeout < time.Millisecond {
				return fmt.Errorf("exec %s: --timeout %s: want at least 1ms (leave it out for the supervisor's default)", pos[0], timeout)
			}
			timeout = min(timeout, protocol.MaxTimeout)
			ctx := context.Background()
			switch {
			case timeout > 0:
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout+5*time.Second) // the supervisor enforces timeout; this bounds a lost reply
				defer cancel()
			case id != "":
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, retryFor) // how long an idempotent exec waits for a supervisor to come back
				defer cancel()
			}
			c, err := a.dialFor(ctx, id != "")
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.Do(ctx, client.Request{Process: pos[0], Args: raw, OpID: id, Timeout: timeout})
			if err != nil {
				if id != "" {
					return fmt.Errorf("exec %s (op id %s): %w", pos[0], id, err)
				}
				return fmt.Errorf("exec %s: %w", pos[0], err)
			}
			out := struct {
				OK bool `json:"ok"`
				*client.Result
				OpID string `json:"op_id,omitempty"`
			}{true, res, id}
			return json.NewEncoder(a.stdout).Encode(out)
		},
	}
	cmd.Flags().StringVar(&args, "args", "", "the process's args as JSON")
	cmd.Flags().StringVar(&id, "id", "", "op id: a repeat with the same id is not applied twice, and the exec is sent again if the supervisor goes away (for up to 60s); the id is bound to the process and args (another call with it fails with op_id_conflict); auto makes a fresh one")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "fail with code timeout after this long, at least 1ms, at most a year (default: the supervisor's, 30s)")
	return cmd
}

// retryFor bounds how long an exec with an op id keeps trying while the
// supervisor is away.
const retryFor = 60 * time.Second

// dialFor dials, and with retry keeps dialing (the supervisor may be
// restarting) until ctx ends.
func (a *app) dialFor(ctx context.Context, retry bool) (*client.Client, error) {
	wait := 20 * time.Millisecond
	for {
		c, err := a.dial()
		if err == nil || !retry {
			return c, err
		}
		select {
		case <-time.After(wait):
			wait = min(2*wait, time.Second)
		case <-ctx.Done():
			return nil, err
		}
	}
}

func (a *app) getCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get PATH",
		Short: "Print the value at PATH (a subtree as a JSON object); not_found if nothing is there",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := c.Get(context.Background(), pos[0])
			if err != nil {
				return fmt.Errorf("get %s: %w", pos[0], err)
			}
			doc, err := v.JSON()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s\n", doc)
			return err
		},
	}
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the workers, the global version and the commit, conflict and VIP counters",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Status(context.Background())
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			if a.output == "json" {
				return json.NewEncoder(a.stdout).Encode(statusJSON(st))
			}
			fmt.Fprintf(a.stdout, "version %d  mode %s  commits %d  conflicts %d  retries %d  vip %d  failures %d\n",
				st.Version, st.Mode, st.Commits, st.Conflicts, st.Retries, st.VIP, st.Failures)
			h := st.Heavy
			huge := "no"
			if h.HugeKiB > 0 {
				huge = humanize.IBytes(uint64(h.HugeKiB) << 10)
			}
			fmt.Fprintf(a.stdout, "durability %s  on disk up to version %d  (%d commits in %d fsyncs)  lost tensors at start %d\n",
				st.Durability, st.Durable, st.Persisted, st.Batches, st.LostTensors)
			fmt.Fprintf(a.stdout, "heavy %s (slab %s x %d, %d retired)  in use %s in %d blocks  largest free %s  huge pages %s  inline up to %s\n",
				humanize.IBytes(uint64(h.Size)), humanize.IBytes(uint64(h.SlabSize)), h.Slabs, h.Retired, humanize.IBytes(uint64(h.InUse)), h.Blocks,
				humanize.IBytes(uint64(h.LargestFree)), huge, humanize.IBytes(uint64(h.InlineMax)))
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLOT\tPID\tSTATE\tIN FLIGHT\tPROCESSED\tRESTARTS")
			for _, w := range st.Workers {
				fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%d\n", w.Slot, w.PID, w.State, w.InFlight, w.Processed, w.Restarts)
			}
			return tw.Flush()
		},
	}
}

func (a *app) snapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up the DATA zone (theus-supervisor --restore FILE starts from a backup)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Write a consistent copy of the DATA zone to FILE while commits go on; print {ok, version, paths, op_ids, bytes, file}",
		Long: "The supervisor writes FILE itself (on its machine, as its user), atomically: a crash leaves the old FILE or the new one. " +
			"The copy holds every commit up to one version and nothing after, and only once that version is on disk. " +
			"HEAVY tensors in the arena are not in it: a restore removes their paths, as a restart does.",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.Backup(context.Background(), pos[0])
			if err != nil {
				return fmt.Errorf("snapshot save %s: %w", pos[0], err)
			}
			return json.NewEncoder(a.stdout).Encode(struct {
				OK bool `json:"ok"`
				*client.BackupInfo
			}{true, rep})
		},
	})
	return cmd
}

// statusJSON is what -o json prints for status: the client's Status
// with "ok".
func statusJSON(st *client.Status) any {
	return struct {
		OK bool `json:"ok"`
		*client.Status
	}{true, st}
}

package flux

import (
	"context"
	"testing"
	"time"

	"github.com/theus-run/theus/internal/golabel"
	"github.com/theus-run/theus/internal/golabel/golabeltest"
	"github.com/theus-run/theus/signal"
)

const waitingFlow = "steps:\n  - flux: wait\n    signal: domain.cmd_go\n"

// A run's and a machine's goroutines carry their own labels, not those
// of the goroutine that started them (a client connection's, in the
// supervisor), which would count their CPU as that client's for as long
// as they run.
func TestRunsNameTheirLoop(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"w.yaml": waitingFlow, "fin.yaml": finalMachine})
	started := make(chan error, 1)
	go func() { // a caller with labels of its own, as a client's connection
		golabel.Set(golabel.Conn, 5)
		ctx := context.Background()
		_, err := e.Run(ctx, RunRequest{Name: "w", ID: "r1", Detach: true})
		if err == nil {
			_, err = e.StartMachine(ctx, MachineRequest{Name: "fin", ID: "m1"})
		}
		started <- err
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"flux.(*run).loop":     {"flux-run r1"},
		"flux.(*machine).loop": {"flux-run m1"},
	}
	golabeltest.Await(t, 10*time.Second, want)
}

// ownersHost is a fakeHost whose engine shares its Context with others
// (Owners): every claim is granted, with a Lost channel.
type ownersHost struct {
	*fakeHost
	changes chan OwnerChange
}

func (h *ownersHost) Claim(_ context.Context, unit string) (*Claim, error) {
	return &Claim{Unit: unit, Lost: make(chan struct{})}, nil
}

func (h *ownersHost) Take(ctx context.Context, unit string) (*Claim, error) {
	return h.Claim(ctx, unit)
}

func (h *ownersHost) Release(*Claim) {}

func (h *ownersHost) Watch() (<-chan OwnerChange, func()) { return h.changes, func() {} }

// With Owners, the engine's owner watch and each run's watch of its lost
// claim are the engine's goroutines, not those of whoever started the
// engine or the run.
func TestOwnerWatchesNameTheirLoop(t *testing.T) {
	h := &ownersHost{fakeHost: newFakeHost(), changes: make(chan OwnerChange)}
	e, err := New(Config{Host: h, Dir: writeFiles(t, map[string]string{"w.yaml": waitingFlow}), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	started := make(chan error, 1)
	go func() { // a caller with labels of its own, as a client's connection
		golabel.Set(golabel.Conn, 5)
		err := e.Start()
		if err == nil {
			_, err = e.Run(context.Background(), RunRequest{Name: "w", ID: "r1", Detach: true})
		}
		started <- err
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"flux.(*Engine).Start.func1":     {"flux"}, // keep: the owner watch
		"flux.(*Engine).watchLost.func1": {"flux"},
		"flux.(*run).loop":               {"flux-run r1"},
	}
	golabeltest.Await(t, 10*time.Second, want)
}

// A signal feed's goroutine is the flux engine's, not its caller's.
func TestHubSignalsNamesItsLoop(t *testing.T) {
	hub := signal.New(signal.Config{})
	defer hub.Close()
	stopped := make(chan func(), 1)
	go func() {
		golabel.Set(golabel.Conn, 5)
		_, stop := HubSignals(hub)
		stopped <- stop
	}()
	stop := <-stopped
	defer stop()
	want := map[string][]string{"flux.HubSignals.func1": {"flux"}}
	golabeltest.Await(t, 10*time.Second, want)
}

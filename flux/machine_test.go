package flux

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoadMachine(t *testing.T) {
	src, err := os.ReadFile("testdata/traffic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	known := func(p string) bool { return p == "light.red" || p == "light.green" }
	f, err := Load("testdata/traffic.yaml", src, known)
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != KindMachine || f.Workflow != nil || f.Name != "traffic" {
		t.Fatalf("Kind, Workflow, Name = %v, %v, %q", f.Kind, f.Workflow, f.Name)
	}
	if f.Meta.Version != "2" || f.Meta.Name != "traffic light" {
		t.Errorf("Meta = %+v", f.Meta)
	}
	m := f.Machine
	if m.Initial != "red" {
		t.Errorf("Initial = %q", m.Initial)
	}
	var names []string
	for _, s := range m.States {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "red green yellow broken" {
		t.Errorf("states in file order = %s", got)
	}
	red := m.State("red")
	if red == nil || red.Pos != (Pos{File: "testdata/traffic.yaml", Line: 6, Col: 3}) {
		t.Fatalf("State(red) = %+v", red)
	}
	if red.On["domain.light.cmd_next"] != "green" || red.On["failed"] != "broken" || len(red.On) != 2 {
		t.Errorf("red.On = %v", red.On)
	}
	if got := render(red.Entry); got != "0 process process @8:9 light.red onfail=-1\n" {
		t.Errorf("red.Entry =\n%s", got)
	}
	yellow := m.State("yellow")
	if w := yellow.Entry.Instrs[0]; w.Op != OpWait || w.Signal != "domain.light.sig_tick" || w.Timeout != 5*time.Second {
		t.Errorf("yellow entry = %+v", w)
	}
	if yellow.On["done"] != "red" {
		t.Errorf("yellow.On = %v", yellow.On)
	}
	broken := m.State("broken")
	if broken.Entry != nil || len(broken.On) != 0 {
		t.Errorf("broken = %+v, want a final state", broken)
	}
	if m.State("blue") != nil {
		t.Error("State(blue) != nil")
	}
	// Drive the cycle red -> green -> yellow -> red by events.
	state := m.Initial
	for _, ev := range []string{"domain.light.cmd_next", "domain.light.cmd_next", "done"} {
		next, ok := m.State(state).On[ev]
		if !ok {
			t.Fatalf("%s has no transition on %s", state, ev)
		}
		state = next
	}
	if state != "red" {
		t.Errorf("after a cycle: %s", state)
	}
}

func TestMachineBuiltByHand(t *testing.T) {
	m := &Machine{Initial: "a", States: []*State{{Name: "a", On: map[string]string{"done": "b"}}, {Name: "b"}}}
	if m.State("b") != m.States[1] || m.State("c") != nil {
		t.Fatal("State does not find the states of a Machine literal")
	}
}

package flux

import (
	"strings"

	"github.com/theus-run/theus/contract"
)

// Machine is a compiled state-machine file.
type Machine struct {
	Initial string
	States  []*State // in file order
}

// State is one state of a Machine.
type State struct {
	Name  string
	Pos   Pos
	On    map[string]string // event -> next state; events are "done", "failed", or a path in the SIGNAL zone (e.g. "domain.cmd_stop")
	Entry *Program          // nil when there is no entry block
}

// State returns the state named name, or nil. It scans States, so it also
// works on a Machine built by hand (in a test).
func (m *Machine) State(name string) *State {
	for _, s := range m.States {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Events a state's entry block ends with.
const (
	EventDone   = "done"
	EventFailed = "failed"
)

// machine compiles the states: and initial: of a machine file.
func (l *loader) machine(states entry, initial *entry, rootPos Pos) *Machine {
	m := &Machine{}
	byName := map[string]*State{}
	es, ok := l.mapping(states.value, states.keyPos, "states:")
	if len(es) == 0 && (ok || isNull(states.value)) {
		l.problem(states.keyPos, "states: is empty: a machine needs at least one state")
	}
	type target struct {
		state, event string
		pos          Pos
	}
	var targets []target
	for _, e := range es {
		st := &State{Name: e.key, Pos: e.keyPos, On: map[string]string{}}
		if _, err := contract.Parse(e.key); err != nil || strings.Contains(e.key, ".") {
			l.problem(e.keyPos, "state name %q must be one segment of letters, digits, _ or -", e.key)
		}
		m.States = append(m.States, st)
		byName[st.Name] = st
		if isNull(l.value(e.value, e.keyPos)) {
			continue // a state with no entry and no transitions: final
		}
		body, ok := l.mapping(e.value, e.keyPos, "a state")
		if !ok {
			continue
		}
		keys := l.checkKeys(body, "a state", "on", "entry")
		if en, ok := keys["entry"]; ok {
			c := &compiler{l: l}
			c.block(en.value, en.keyPos, blockKind{key: "entry"}, 1)
			st.Entry = &c.prog
		}
		on, ok := keys["on"]
		if !ok || isNull(l.value(on.value, on.keyPos)) {
			continue
		}
		events, ok := l.mapping(on.value, on.keyPos, "on:")
		if !ok {
			continue
		}
		for _, ev := range events {
			if !validEvent(ev.key) {
				l.problem(ev.keyPos, "event %q is not done, failed or a signal path (a path with a sig_* or cmd_* segment)", ev.key)
			}
			v := l.value(ev.value, ev.keyPos)
			next, ok := stringValue(v)
			if !ok {
				l.problem(l.pos(v, ev.keyPos), "on %s: the next state must be a state name, not %s", ev.key, kindOf(v))
				continue
			}
			st.On[ev.key] = next
			targets = append(targets, target{state: next, event: ev.key, pos: l.pos(v, ev.keyPos)})
		}
	}
	for _, t := range targets {
		if byName[t.state] == nil {
			l.problem(t.pos, "on %s: no state named %q", t.event, t.state)
		}
	}
	if initial == nil {
		l.problem(rootPos, "a machine needs initial: (the state it starts in)")
		return m
	}
	v := l.value(initial.value, initial.keyPos)
	name, ok := stringValue(v)
	switch {
	case !ok:
		l.problem(l.pos(v, initial.keyPos), "initial: must be a state name, not %s", kindOf(v))
	case byName[name] == nil:
		l.problem(l.pos(v, initial.keyPos), "initial: no state named %q", name)
	default:
		m.Initial = name
	}
	return m
}

// validEvent reports whether ev is done, failed or a SIGNAL-zone path.
func validEvent(ev string) bool {
	if ev == EventDone || ev == EventFailed {
		return true
	}
	p, err := contract.Parse(ev)
	return err == nil && p.Zone() == contract.ZoneSignal
}

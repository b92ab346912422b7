package flux

import (
	"errors"
	"strings"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	known := func(p string) bool { return p != "nope" }
	tests := []struct {
		name string
		src  string
		want string // the *LoadError's text
	}{
		{"unknown root key", "steps: [a]\ntimeout: 3\n",
			`w.yaml:2:1: unknown key "timeout" in a workflow file (allowed: name, description, version, steps)`},
		{"missing steps", "name: x\n",
			`w.yaml:1:1: missing steps: (a workflow) or states: (a machine)`},
		{"empty file", "",
			`w.yaml:1:1: the file is empty: a workflow needs steps:, a machine states:`},
		{"empty steps", "steps: []\n",
			`w.yaml:1:1: steps: is empty: a block needs at least one step`},
		{"null steps", "steps:\n",
			`w.yaml:1:1: steps: is empty: a block needs at least one step`},
		{"steps not a list", "steps: {a: b}\n",
			`w.yaml:1:8: steps: must be a list of steps, not a mapping`},
		{"empty then", "steps:\n  - flux: if\n    condition: 'True'\n    then: []\n",
			`w.yaml:4:5: then: is empty: a block needs at least one step`},
		{"null then", "steps:\n  - flux: if\n    condition: 'True'\n    then:\n    else: [a]\n",
			`w.yaml:4:5: then: is empty: a block needs at least one step`},
		{"empty else", "steps:\n  - flux: if\n    condition: 'True'\n    then: [a]\n    else: []\n",
			`w.yaml:5:5: else: is empty: a block needs at least one step`},
		{"empty do", "steps:\n  - flux: while\n    condition: 'True'\n    do: []\n",
			`w.yaml:4:5: do: is empty: a block needs at least one step`},
		{"empty run steps", "steps:\n  - flux: run\n    steps: []\n",
			`w.yaml:3:5: steps: is empty: a block needs at least one step`},
		{"empty on_fail", "steps:\n  - process: a\n    on_fail: []\n",
			`w.yaml:3:5: on_fail: is empty: a block needs at least one step`},
		{"unknown process step key", "steps:\n  - process: a\n    retries: 3\n",
			`w.yaml:3:5: unknown key "retries" in a process step (allowed: process, args, on_fail)`},
		{"unknown flux step key and missing do", "steps:\n  - flux: while\n    condition: 'True'\n    then: [a]\n",
			"w.yaml:2:5: flux: while needs do:\n" +
				`w.yaml:4:5: unknown key "then" in a flux: while step (allowed: flux, condition, do)`},
		{"missing condition", "steps:\n  - flux: if\n    then: [a]\n",
			`w.yaml:2:5: flux: if needs condition:`},
		{"unknown flux kind", "steps:\n  - flux: loop\n",
			`w.yaml:2:11: unknown flux kind "loop" (expected if, while, run, wait or continue)`},
		{"unknown process, both forms", "steps:\n  - nope\n  - process: nope\n",
			"w.yaml:2:5: unknown process \"nope\"\nw.yaml:3:5: unknown process \"nope\""},
		{"condition does not parse", "steps:\n  - flux: if\n    condition: domain.x >\n    then: [a]\n",
			`w.yaml:3:16: condition: expression "domain.x >" does not compile: unexpected token EOF (column 10)`},
		{"condition with an unknown name", "steps:\n  - flux: if\n    condition: foo.x\n    then: [a]\n",
			`w.yaml:3:16: condition: expression "foo.x" does not compile: unknown name foo (column 1)`},
		{"condition not a scalar", "steps:\n  - flux: while\n    condition: [a]\n    do: [a]\n",
			`w.yaml:3:16: condition: must be an expression, not a list`},
		{"arg expression does not compile", "steps:\n  - process: a\n    args:\n      x: ${ domain. }\n",
			`w.yaml:4:10: args.x: expression "domain." does not compile: unexpected end of expression (column 7)`},
		{"continue not last in on_fail", "steps:\n  - process: a\n    on_fail:\n      - flux: continue\n      - b\n",
			`w.yaml:4:9: flux: continue is allowed only as the last step of an on_fail block`},
		{"continue outside on_fail", "steps:\n  - a\n  - flux: continue\n",
			`w.yaml:3:5: flux: continue is allowed only as the last step of an on_fail block`},
		{"continue nested inside on_fail", "steps:\n  - process: a\n    on_fail:\n      - flux: run\n        steps:\n          - flux: continue\n",
			`w.yaml:6:13: flux: continue is allowed only as the last step of an on_fail block`},
		{"args not a mapping", "steps:\n  - process: a\n    args: [1]\n",
			`w.yaml:3:11: args: must be a mapping, not a list`},
		{"on_fail not a list", "steps:\n  - process: a\n    on_fail: b\n",
			`w.yaml:3:14: on_fail: must be a list of steps, not a string`},
		{"arg value not JSON", "steps:\n  - process: a\n    args: {x: .nan}\n",
			`w.yaml:3:15: a number cannot be converted to JSON`},
		{"signal not a string", "steps:\n  - flux: wait\n    signal: [domain]\n",
			`w.yaml:3:13: signal: must be a path, not a list`},
		{"wait without signal", "steps:\n  - flux: wait\n    timeout: 3s\n",
			`w.yaml:2:5: flux: wait needs signal:`},
		{"bad timeout text", "steps:\n  - flux: wait\n    signal: domain.cmd_go\n    timeout: soon\n",
			`w.yaml:4:14: timeout: "soon" is not a duration (write 30s, 5m, 1h30m or a number of seconds)`},
		{"negative timeout", "steps:\n  - flux: wait\n    signal: domain.cmd_go\n    timeout: -1\n",
			`w.yaml:4:14: timeout: must be greater than zero (leave it out to wait without a timeout)`},
		{"timeout too large", "steps:\n  - flux: wait\n    signal: domain.cmd_go\n    timeout: 1.0e300\n",
			`w.yaml:4:14: timeout: 1.0e300 is not a number of seconds this runtime can wait`},
		{"timeout a list", "steps:\n  - flux: wait\n    signal: domain.cmd_go\n    timeout: [1]\n",
			`w.yaml:4:14: timeout: must be a duration like 30s or a number of seconds, not a list`},
		{"invalid signal path", "steps:\n  - flux: wait\n    signal: domain..x\n",
			`w.yaml:3:13: signal: contract: invalid path "domain..x": empty segment at byte 7`},
		{"signal path in another zone", "steps:\n  - flux: wait\n    signal: domain.log_x\n",
			`w.yaml:3:13: signal: "domain.log_x" is in the LOG zone: a signal path has a sig_* or cmd_* segment, or is above one`},
		{"machine without initial", "states:\n  idle:\n    on: {done: idle}\n",
			`w.yaml:1:1: a machine needs initial: (the state it starts in)`},
		{"initial not a state", "initial: busy\nstates:\n  idle:\n    on: {done: idle}\n",
			`w.yaml:1:10: initial: no state named "busy"`},
		{"on target not a state", "initial: idle\nstates:\n  idle:\n    on:\n      done: gone\n",
			`w.yaml:5:13: on done: no state named "gone"`},
		{"bad events", "initial: idle\nstates:\n  idle:\n    on:\n      stop: idle\n      domain.x: idle\n",
			"w.yaml:5:7: event \"stop\" is not done, failed or a signal path (a path with a sig_* or cmd_* segment)\n" +
				`w.yaml:6:7: event "domain.x" is not done, failed or a signal path (a path with a sig_* or cmd_* segment)`},
		{"unknown state key", "initial: idle\nstates:\n  idle:\n    exit: [a]\n",
			`w.yaml:4:5: unknown key "exit" in a state (allowed: on, entry)`},
		{"empty entry", "initial: idle\nstates:\n  idle:\n    entry: []\n",
			`w.yaml:4:5: entry: is empty: a block needs at least one step`},
		{"unknown process in entry", "initial: idle\nstates:\n  idle:\n    entry: [nope]\n",
			`w.yaml:4:13: unknown process "nope"`},
		{"bad state name", "initial: idle\nstates:\n  idle: {}\n  a.b: {}\n",
			`w.yaml:4:3: state name "a.b" must be one segment of letters, digits, _ or -`},
		{"steps in a machine", "steps: [a]\nstates: {}\n",
			`w.yaml:2:1: a file has steps: (a workflow) or states: (a machine), not both`},
		{"initial in a workflow", "initial: a\nsteps: [a]\n",
			`w.yaml:1:1: unknown key "initial" in a workflow file (allowed: name, description, version, steps)`},
		{"step not a name or mapping", "steps:\n  - 5\n",
			`w.yaml:2:5: a step must be a process name or a mapping, not an integer`},
		{"process and flux together", "steps:\n  - {process: a, flux: run}\n",
			`w.yaml:2:6: a step has either process: or flux:, not both`},
		{"step with neither", "steps:\n  - x: y\n",
			`w.yaml:2:5: a step needs process: or flux: (or is a process name)`},
		{"metadata not text", "name: [a]\nsteps: [a]\n",
			`w.yaml:1:7: name: must be text, not a list`},
		{"alias", "steps: &s [a]\nname: *s\n",
			`w.yaml:2:7: YAML aliases (*name) are not supported in Flux files`},
		{"tag", "steps: !!seq [a]\n",
			`w.yaml:1:8: YAML tags (!!seq) are not supported in Flux files`},
		{"syntax error", "steps: [a\n",
			`w.yaml:1:8: YAML: sequence end token ']' not found`},
		{"duplicate key", "steps: [a]\nsteps: [b]\n",
			`w.yaml:2:1: YAML: mapping key "steps" already defined at [1:1]`},
		{"two documents", "steps: [a]\n---\nsteps: [b]\n",
			`w.yaml:3:1: a Flux file holds one YAML document, this is a second one`},
		{"problems sorted by position", "steps:\n  - nope\n  - flux: loop\nextra: 1\n",
			"w.yaml:2:5: unknown process \"nope\"\nw.yaml:3:11: unknown flux kind \"loop\" (expected if, while, run, wait or continue)\n" +
				`w.yaml:4:1: unknown key "extra" in a workflow file (allowed: name, description, version, steps)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Load("w.yaml", []byte(tt.src), known)
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load = %v, %v; want a *LoadError", f, err)
			}
			if f != nil {
				t.Errorf("Load returned a file with its error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
			if len(le.Problems) != strings.Count(tt.want, "\n")+1 {
				t.Errorf("%d problems, want one per line", len(le.Problems))
			}
		})
	}
}

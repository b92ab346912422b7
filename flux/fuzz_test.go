package flux

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that Load never panics, and that it returns either a
// file or a *LoadError whose problems all name the file.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seeds {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, s := range []string{
		"", "steps: [a]", "steps:\n  - process: a\n    on_fail: [b, {flux: continue}]\n",
		"initial: s\nstates: {s: {on: {done: s}}}\n", "steps: &a [*a]", "steps: [[[[[[]]]]]]",
		"steps:\n  - flux: if\n    condition: \"domain.x ?? [1,2][3]\"\n    then: [a]\n",
		"steps:\n  - process: a\n    args: {x: '${ args }', y: !!binary aGk=}\n",
		"? [a]\n: b\n", "<<: {steps: [a]}\n", "steps: [a]\n...\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Load("f.yaml", src, func(p string) bool { return p != "nope" })
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("Load error %v is not a *LoadError with problems", err)
			}
			for _, p := range le.Problems {
				if p.Pos.File != "f.yaml" || p.Msg == "" {
					t.Fatalf("problem %+v", p)
				}
			}
			if file != nil {
				t.Fatal("Load returned a file and an error")
			}
			return
		}
		if (file.Kind == KindWorkflow) != (file.Workflow != nil) || (file.Kind == KindMachine) != (file.Machine != nil) {
			t.Fatalf("Kind %v with Workflow %v, Machine %v", file.Kind, file.Workflow, file.Machine)
		}
		if file.Workflow != nil {
			checkProgram(t, file.Workflow)
		}
		if file.Machine != nil {
			if file.Machine.State(file.Machine.Initial) == nil {
				t.Fatalf("initial %q is not a state", file.Machine.Initial)
			}
			for _, s := range file.Machine.States {
				for ev, next := range s.On {
					if file.Machine.State(next) == nil {
						t.Fatalf("%s on %s goes to a missing state %q", s.Name, ev, next)
					}
				}
				if s.Entry != nil {
					checkProgram(t, s.Entry)
				}
			}
		}
	})
}

// checkProgram checks that every jump lands inside the program (or at its
// end) and every instruction has what its op needs.
func checkProgram(t *testing.T, p *Program) {
	t.Helper()
	if len(p.Instrs) == 0 {
		t.Fatal("an empty program loaded")
	}
	for pc, in := range p.Instrs {
		inRange := func(x int) bool { return x >= 0 && x <= len(p.Instrs) }
		switch in.Op {
		case OpProcess:
			if in.Process == "" || in.OnFail < -1 || in.OnFail > len(p.Instrs) || in.OnFail == pc {
				t.Fatalf("pc %d: %+v", pc, in)
			}
		case OpBranch:
			if in.Cond == nil || !inRange(in.Target) || in.Target <= pc {
				t.Fatalf("pc %d: %+v", pc, in)
			}
		case OpJump:
			if !inRange(in.Target) {
				t.Fatalf("pc %d: %+v", pc, in)
			}
		case OpFail:
			if in.Target < 0 || in.Target >= pc || p.Instrs[in.Target].Op != OpProcess {
				t.Fatalf("pc %d: %+v", pc, in)
			}
		case OpWait:
			if in.Signal == "" || in.Timeout < 0 {
				t.Fatalf("pc %d: %+v", pc, in)
			}
		case OpEnter:
		default:
			t.Fatalf("pc %d: op %d", pc, in.Op)
		}
	}
}

// FuzzExpr checks that compiling and evaluating any condition never
// panics: it compiles or is refused, and evaluates or fails with an
// *EvalError.
func FuzzExpr(f *testing.F) {
	for _, s := range []string{
		"len(domain.get('action_log', [])) < 5", "domain['sensor_data']['temp'] >= 25", "domain.x.y",
		"domain.l[-1] + 1", "str(domain.m) + 'x'", "sorted(domain.l)", "range(3) + domain.l",
		"domain.s.lower() in 'abc'", "max(domain.l) if True else 0", "int(domain.s) // 2",
		"{'a': domain.n}['a'] ?? 1", "domain.l[1:] == [2]", "not signal.domain.cmd_x and run.ops < 3",
	} {
		f.Add(s)
	}
	dom := map[string]any{
		"l": []any{1.0, 2.0, "x", nil}, "m": map[string]any{"k": []any{}}, "s": "Abc", "n": nil, "f": 1.5,
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := compileExpr(src, Pos{File: "f.yaml", Line: 1, Col: 1})
		if err != nil {
			return
		}
		env := &Env{Domain: func() (map[string]any, error) { return dom, nil }, Args: map[string]any{"a": 1.0}}
		if _, err := e.Truth(env); err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("%q: %v is not an *EvalError", src, err)
			}
		}
	})
}

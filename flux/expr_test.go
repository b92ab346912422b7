package flux

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func mustExpr(t *testing.T, src string) *Expr {
	t.Helper()
	e, err := compileExpr(src, Pos{File: "w.yaml", Line: 3, Col: 16})
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return e
}

// domainEnv serves dom as the domain layer and counts the loads.
func domainEnv(dom map[string]any, loads *int) *Env {
	return &Env{
		Domain: func() (map[string]any, error) { *loads++; return dom, nil },
		Global: func() (map[string]any, error) { return map[string]any{"limit": 10.0}, nil },
		Args:   map[string]any{"user": "ann", "n": 2.0},
		Signal: map[string]any{"domain": map[string]any{"cmd_stop": true}},
		Run:    RunInfo{ID: "r1", Ops: 7},
	}
}

// The three conditions ported from the original's examples, unchanged.
func TestPortedConditions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		dom  map[string]any
		want bool
	}{
		{"while over a sensor reading, log short", "len(domain.get('action_log', [])) < 5",
			map[string]any{"action_log": []any{"a", "b"}}, true},
		{"while over a sensor reading, log full", "len(domain.get('action_log', [])) < 5",
			map[string]any{"action_log": []any{1.0, 2.0, 3.0, 4.0, 5.0}}, false},
		{"while over a sensor reading, no log yet", "len(domain.get('action_log', [])) < 5",
			map[string]any{}, true},
		{"if on a string, equal", "domain['mode'] == 'active'", map[string]any{"mode": "active"}, true},
		{"if on a string, different", "domain['mode'] == 'active'", map[string]any{"mode": "idle"}, false},
		{"nested index, hot", "domain['sensor_data']['temp'] >= 25",
			map[string]any{"sensor_data": map[string]any{"temp": 25.0}}, true},
		{"nested index, cold", "domain['sensor_data']['temp'] >= 25",
			map[string]any{"sensor_data": map[string]any{"temp": 24.5}}, false},
		{"nested index, missing", "domain['sensor_data']['temp'] >= 25", map[string]any{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loads := 0
			got, err := mustExpr(t, tt.src).Truth(domainEnv(tt.dom, &loads))
			if err != nil || got != tt.want {
				t.Fatalf("Truth = %v, %v; want %v", got, err, tt.want)
			}
			if loads != 1 {
				t.Errorf("Domain loaded %d times, want 1", loads)
			}
		})
	}
}

func TestEval(t *testing.T) {
	dom := map[string]any{
		"x":     map[string]any{"y": 3.0, "s": "Hi ", "l": []any{1.0, 2.0, 3.0}},
		"mode":  "active",
		"count": 2.0,
		"zero":  0.0,
		"empty": map[string]any{},
		"n":     nil,
	}
	tests := []struct {
		src  string
		want any
	}{
		{"domain.x.y", 3.0},
		{"domain['x']['y'] == 3", true},
		{"domain.x.y == 3.0", true},
		{"domain.count != 2", false},
		{"domain.x.l[0]", 1.0},
		{"domain.x.l[-1]", 3.0},
		{"domain.x.l[1.0]", 2.0},
		{"2 in domain.x.l", true},
		{"4 not in domain.x.l", true},
		{"'y' in domain.x", true},
		{"'ct' in 'action'", true},
		{"domain.get('mode')", "active"},
		{"domain.get('nope')", nil},
		{"domain.get('nope', 5)", 5},
		{"domain.x.get('y', 0) + 1", 4.0},
		{"domain.mode == 'active' and not domain.zero", true},
		{"domain.zero or domain.empty", false},
		{"True and False", false},
		{"None == None", true},
		{"domain.n == None", true},
		{"len(domain.x.l) + len('héllo')", 8},
		{"int('42') + int(3.9) + int(-3.9) + int(True)", 43},
		{"float('1.5') + float(1)", 2.5},
		{"str(domain.count) + '/' + str(2.5) + str(None) + str(True)", "2/2.5NoneTrue"},
		{"str(domain.x.l)", "[1, 2, 3]"},
		{"abs(-2) + abs(-0.5)", 2.5},
		{"min(3, 1, 2)", 1},
		{"max(domain.x.l)", 3.0},
		{"min('b', 'a')", "a"},
		{"sum(domain.x.l)", 6.0},
		{"sum([1, 2], 10)", 13},
		{"round(2.5) + round(3.5)", 6},
		{"round(2.675, 1)", 2.7},
		{"any([0, '', 1]) and not all([1, 0])", true},
		{"sorted([3, 1, 2])", []any{1, 2, 3}},
		{"range(3)", []any{0, 1, 2}},
		{"range(5, 0, -2)", []any{5, 3, 1}},
		{"domain.x.keys()", []any{"l", "s", "y"}},
		{"len(domain.x.values())", 3},
		{"domain.x.s.strip().lower() == 'hi'", true},
		{"domain.mode.upper().startswith('ACT')", true},
		{"domain.x.s[0]", "H"},
		{"1 < domain.count < 3", true},
		{"domain.count > 1 ? 'big' : 'small'", "big"},
		{"domain.missing ?? 'dflt'", "dflt"},
		{"args.user + '@' + run.id", "ann@r1"},
		{"run.ops > args.n", true},
		{"global.limit", 10.0},
		{"signal.domain.cmd_stop", true},
		{"signal.domain.cmd_go", nil},
		{"[1, 2] == [1.0, 2.0]", true},
		{"{'a': 1} == {'a': 1.0}", true},
		{"10 / 4", 2.5},
		{"7 % 3", 1},
		{"-domain.count", -2.0},
		{"domain.get('nope') is None", true},
		{"domain.mode is not None and domain.n is None", true},
		{"'this is it' == \"this is\" + ' it'", true},
		{"{'is': 1}.is", 1},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			loads := 0
			got, err := mustExpr(t, tt.src).Eval(domainEnv(dom, &loads))
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !equal(got, tt.want) || pyType(got) != pyType(tt.want) {
				t.Fatalf("Eval = %#v (%s), want %#v (%s)", got, pyType(got), tt.want, pyType(tt.want))
			}
		})
	}
}

// The missing-key rule of the package doc.
func TestMissingKeyRule(t *testing.T) {
	dom := map[string]any{"s": "abc", "n": 1.0, "l": []any{1.0}}
	tests := []struct {
		src     string
		want    any
		wantErr string // a substring of the *EvalError's text; "" for no error
	}{
		{src: "domain.a", want: nil},
		{src: "domain.a.b.c", want: nil},
		{src: "domain['a']['b']", want: nil},
		{src: "domain.get('a')", want: nil},
		{src: "domain.a.get('b', 7)", want: 7},
		{src: "domain.a < 1", want: false},
		{src: "domain.a <= 1", want: false},
		{src: "1 > domain.a", want: false},
		{src: "domain.a >= domain.b", want: false},
		{src: "domain.a == None", want: true},
		{src: "domain.a != 0", want: true},
		{src: "len(domain.a)", want: 0},
		{src: "1 in domain.a", want: false},
		{src: "not domain.a", want: true},
		{src: "domain.a + 1", wantErr: "unsupported operand types for +: None and int"},
		{src: "domain.a * 2", wantErr: "w.yaml:3:16: domain.a * 2: "},
		{src: "-domain.a", wantErr: "w.yaml:3:16"},
		{src: "domain.s['x']", wantErr: "string indices must be integers, not str"},
		{src: "domain.s[None]", wantErr: "string indices must be integers, not None"},
		{src: "domain.l[3]", wantErr: "list index 3 out of range"},
		{src: "domain.n.x", wantErr: "float object is not subscriptable"},
		{src: "domain.s < 1", wantErr: "cannot order str and int"},
		{src: "domain.s.get('x')", wantErr: "str object has no attribute 'get'"},
		{src: "len(domain.n)", wantErr: "object of type float has no len()"},
		{src: "1 in domain.n", wantErr: "argument of type float is not iterable"},
		{src: "int(domain.a)", wantErr: "int() argument must be a string or a number, not None"},
		{src: "domain.a.lower()", wantErr: "None object has no attribute 'lower'"},
		{src: "max([])", wantErr: "max() arg is an empty sequence"},
		{src: "7 % int(domain.n - 1)", wantErr: "integer divide by zero"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			loads := 0
			got, err := mustExpr(t, tt.src).Eval(domainEnv(dom, &loads))
			if tt.wantErr == "" {
				if err != nil || !equal(got, tt.want) {
					t.Fatalf("Eval = %#v, %v; want %#v", got, err, tt.want)
				}
				return
			}
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("Eval = %#v, %v; want an *EvalError", got, err)
			}
			if ee.Pos != (Pos{File: "w.yaml", Line: 3, Col: 16}) || ee.Expr != tt.src {
				t.Errorf("EvalError names %v %q", ee.Pos, ee.Expr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestTruthiness(t *testing.T) {
	tests := []struct {
		src  string
		want bool
	}{
		{"None", false}, {"False", false}, {"0", false}, {"0.0", false}, {"''", false},
		{"[]", false}, {"{}", false}, {"domain.empty_list", false}, {"domain.empty_map", false},
		{"True", true}, {"1", true}, {"-0.5", true}, {"'x'", true}, {"[0]", true}, {"{'a': None}", true},
		{"domain.list", true}, {"domain.map", true},
	}
	dom := map[string]any{"empty_list": []any{}, "empty_map": map[string]any{}, "list": []any{nil}, "map": map[string]any{"k": nil}}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			loads := 0
			got, err := mustExpr(t, tt.src).Truth(domainEnv(dom, &loads))
			if err != nil || got != tt.want {
				t.Fatalf("Truth = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestUsesAndLazyLoading(t *testing.T) {
	e := mustExpr(t, "args.n > 1 and run.ops < 10 and signal.x == None")
	for name, want := range map[string]bool{"args": true, "run": true, "signal": true, "domain": false, "global": false, "len": false, "": false} {
		if e.Uses(name) != want {
			t.Errorf("Uses(%q) = %v, want %v", name, !want, want)
		}
	}
	failing := func() (map[string]any, error) {
		t.Error("a layer the expression does not use was loaded")
		return nil, nil
	}
	if _, err := e.Truth(&Env{Domain: failing, Global: failing}); err != nil {
		t.Fatal(err)
	}
	d := mustExpr(t, "domain.a == global.a and domain.b == None")
	if !d.Uses("domain") || !d.Uses("global") || d.Uses("args") {
		t.Errorf("Uses wrong for %q", d)
	}
	loads := 0
	env := domainEnv(map[string]any{}, &loads)
	if _, err := d.Eval(env); err != nil {
		t.Fatal(err)
	}
	if loads != 1 {
		t.Errorf("Domain loaded %d times in one evaluation, want 1", loads)
	}
	// A nil Env and nil loaders read as empty layers.
	if v, err := d.Eval(nil); err != nil || v != true {
		t.Errorf("Eval(nil) = %v, %v", v, err)
	}
}

func TestLoaderErrorIsEvalError(t *testing.T) {
	boom := errors.New("snapshot gone")
	e := mustExpr(t, "domain.a")
	_, err := e.Eval(&Env{Domain: func() (map[string]any, error) { return nil, boom }})
	var ee *EvalError
	if !errors.As(err, &ee) || !errors.Is(err, boom) {
		t.Fatalf("Eval = %v; want an *EvalError wrapping the loader's error", err)
	}
	if want := "w.yaml:3:16: domain.a: loading domain: snapshot gone"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestEvalArgs(t *testing.T) {
	f := mustLoad(t, "steps:\n  - process: p\n    args:\n      lit: {a: [1, 'x']}\n      n: ${ len(domain.items) }\n"+
		"      who: ${ args.user }\n      m: \"${ domain.get('m', {'k': None}) }\"\n      d: ${ domain.items }\n")
	loads := 0
	env := domainEnv(map[string]any{"items": []any{1.0, 2.5}}, &loads)
	got, err := f.Workflow.Instrs[0].EvalArgs(env)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"lit":{"a":[1,"x"]},"n":2,"who":"ann","m":{"k":null},"d":[1,2.5]}`; string(got) != want {
		t.Errorf("EvalArgs = %s, want %s", got, want)
	}
	if loads != 1 {
		t.Errorf("Domain loaded %d times for one step's args, want 1", loads)
	}
	none := mustLoad(t, "steps: [p]\n")
	if got, err := none.Workflow.Instrs[0].EvalArgs(env); err != nil || string(got) != "{}" {
		t.Errorf("EvalArgs without args = %s, %v; want {}", got, err)
	}
	bad := mustLoad(t, "steps:\n  - process: p\n    args:\n      x: ${ domain.a + 1 }\n")
	_, err = bad.Workflow.Instrs[0].EvalArgs(env)
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Pos != (Pos{File: "w.yaml", Line: 4, Col: 10}) {
		t.Fatalf("EvalArgs = %v; want an *EvalError at w.yaml:4:10", err)
	}
	nan := mustLoad(t, "steps:\n  - process: p\n    args:\n      x: ${ float('nan') }\n")
	if _, err := nan.Workflow.Instrs[0].EvalArgs(env); !errors.As(err, &ee) {
		t.Fatalf("EvalArgs of NaN = %v; want an *EvalError (JSON has no NaN)", err)
	}
}

// An Expr is shared by every run of a workflow: it must be safe to
// evaluate concurrently (run with -race).
func TestExprConcurrentEval(t *testing.T) {
	e := mustExpr(t, "len(domain.get('log', [])) < 5 and args.n > 1 and str(run.ops) != ''")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dom := map[string]any{"log": []any{float64(i)}}
			env := &Env{Domain: func() (map[string]any, error) { return dom, nil }, Args: map[string]any{"n": 2.0}, Run: RunInfo{Ops: i}}
			for range 200 {
				if ok, err := e.Truth(env); err != nil || !ok {
					t.Errorf("Truth = %v, %v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

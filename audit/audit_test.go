package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/contract"
)

// The issue's example and the original's own test recipe, unchanged.
const issueRecipe = `audit: {level: B, threshold_max: 3, threshold_min: 1, reset_on_success: true}
process_recipes:
  bank.transfer:
    inputs:  [{field: amount, min: 0.01, max: 10000, level: A, message: "amount out of range"}]
    outputs: [{field: "domain.accounts.{from}", min: 0, level: S}]
`

const originalRecipe = `# from the original's tests/03_audit/resources
audit:
  # Global Defaults (Fallback if rule doesn't specify)
  threshold_max: 100
  reset_on_success: false

process_recipes:
  p_transfer:
    inputs:
      - field: "amount"
        min: 100
        message: "Amount must be >= 100"
        level: "B"
        max_threshold: 1
      - field: "dest"
        regex: "^User.*"
        message: "Dest should start with 'User'"
        level: "C"
    outputs:
      - field: "domain.balance"
        max: 5000
        message: "Balance limit exceeded"
  p_critical:
    inputs:
      - field: "server"
        regex: "^SAFE$"
        message: "CRITICAL: Only SAFE server allowed!"
        level: "S"
`

func mustParse(t *testing.T, text string) *Recipe {
	t.Helper()
	r, err := Parse("recipe.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return r.WithGen(1)
}

func TestParseOriginalFormats(t *testing.T) {
	r := mustParse(t, issueRecipe)
	d := r.Defaults
	if d.Level != Block || d.ThresholdMax != 3 || d.ThresholdMin != 1 || !d.ResetOnSuccess {
		t.Errorf("defaults %+v", d)
	}
	rs := r.For("bank.transfer")
	if len(rs.Inputs) != 1 || len(rs.Outputs) != 1 {
		t.Fatalf("rules %+v", rs)
	}
	in := rs.Inputs[0]
	if in.Level != Abort || in.Message != "amount out of range" || in.Max != 3 || in.Min != 1 || in.ID != "inputs[0]:amount" || in.Line != 4 {
		t.Errorf("input rule %+v", in)
	}
	if out := rs.Outputs[0]; out.Level != Stop || out.ID != "outputs[0]:domain.accounts.{from}" {
		t.Errorf("output rule %+v", out)
	}

	r = mustParse(t, originalRecipe)
	if r.Defaults.ThresholdMax != 100 || r.Defaults.ResetOnSuccess || r.Defaults.Level != Block {
		t.Errorf("defaults %+v", r.Defaults)
	}
	p := r.For("p_transfer")
	if p.Inputs[0].Max != 1 || p.Inputs[1].Level != Count || p.Outputs[0].Level != Block || p.Outputs[0].Max != 100 {
		t.Errorf("p_transfer %+v %+v %+v", p.Inputs[0], p.Inputs[1], p.Outputs[0])
	}
	if r.For("p_critical").Inputs[0].Level != Stop {
		t.Error("p_critical's rule is not S")
	}
	// The original also reads the defaults at the top, and names levels.
	r = mustParse(t, "threshold_max: 7\nlevel: Count\nprocess_recipes: {p: {inputs: [{field: x, eq: 1}]}}\n")
	if r.Defaults.ThresholdMax != 7 || r.For("p").Inputs[0].Level != Count {
		t.Errorf("top-level defaults: %+v", r.Defaults)
	}
	// An original recipe with no rules at all.
	mustParse(t, "process_recipes:\n  p_process:\n    inputs: []\n    outputs: []\n  p_break_logic:\n    outputs: []\n")
	mustParse(t, "")
}

func TestParseErrorsHaveLines(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"audit: {level: B}\nprocess_recipes:\n  p:\n    inputs:\n      - field: a\n        minimum: 3\n", `recipe.yaml:6: unknown key "minimum"`},
		{"audti: {}\n", `recipe.yaml:1: unknown key "audti"`},
		{"audit: {level: X}\n", `recipe.yaml:1: audit.level: unknown level "X"`},
		{"audit: {threshold_max: -1}\n", `recipe.yaml:1: audit.threshold_max: want a whole number`},
		{"process_recipes:\n  p:\n    inputs:\n      - {field: a, regex: \"(\"}\n", `recipe.yaml:4: process_recipes.p.inputs[0].regex: error parsing regexp`},
		{"process_recipes:\n  p:\n    inputs:\n      - {field: a}\n", `recipe.yaml:4: process_recipes.p.inputs[0]: no condition`},
		{"process_recipes:\n  p:\n    inputs:\n      - {min: 1}\n", `recipe.yaml:4: process_recipes.p.inputs[0]: no field`},
		{"process_recipes:\n  p:\n    outputs:\n      - {field: \"domain.{a\", min: 1}\n", `recipe.yaml:4: process_recipes.p.outputs[0]: field "domain.{a"`},
		{"process_recipes:\n  p:\n    inputs:\n      - {field: a, min: 5, max: 1}\n", `min 5 is over max 1`},
		{"process_recipes:\n  p:\n    inputs:\n      - {field: a, min_len: 5, max_len: 2}\n", `recipe.yaml:4: process_recipes.p.inputs[0]: min_len 5 is over max_len 2`},
		{"process_recipes:\n  p:\n    inputs:\n      - {field: a, in: 3}\n", `recipe.yaml:4: process_recipes.p.inputs[0].in: want a list`},
		{"process_recipes:\n  p:\n    input: []\n", `recipe.yaml:3: unknown key "input"`},
		{"process_recipes: [1]\n", `recipe.yaml:1: process_recipes must be a mapping`},
		{"audit: {level: B}\nthreshold_max: 2\n", `recipe.yaml:2: threshold_max: give the defaults in audit: or at the top, not both`},
		{"a: [\n", `recipe.yaml:1: not YAML`},
		{"process_recipes:\n  p: {inputs: [{field: a, min: 1, min: 2}]}\n", `recipe.yaml:2: not YAML: [2:35] mapping key "min" already defined`},
	} {
		_, err := Parse("recipe.yaml", []byte(c.text))
		var le *LoadError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.text, err, c.want)
		}
	}
}

func TestRuleKinds(t *testing.T) {
	r := mustParse(t, `process_recipes:
  p:
    inputs:
      - {field: n, min: 1, max: 10}
      - {field: s, min_len: 2, max_len: 4}
      - {field: state, eq: "READY"}
      - {field: kind, neq: {a: [1, 2]}}
      - {field: name, regex: "^User"}
      - {field: color, in: [red, 3, null, true]}
      - {field: deep.list.1, eq: 2}
`)
	rs := r.For("p")
	for _, c := range []struct {
		args string
		want []string // rule IDs violated
	}{
		{`{}`, nil}, // absent fields are not checked
		{`{"n":1,"s":"ab","state":"READY","kind":{"a":[1]},"name":"User1","color":"red","deep":{"list":[1,2]}}`, nil},
		{`{"n":0.5}`, []string{"inputs[0]:n"}},
		{`{"n":11}`, []string{"inputs[0]:n"}},
		{`{"n":"5"}`, []string{"inputs[0]:n"}},
		{`{"n":10.0}`, nil},
		{`{"s":"a"}`, []string{"inputs[1]:s"}},
		{`{"s":"ééé"}`, nil}, // characters, not bytes
		{`{"s":[1,2,3,4,5]}`, []string{"inputs[1]:s"}},
		{`{"s":{"a":1,"b":2}}`, nil},
		{`{"s":7}`, []string{"inputs[1]:s"}},
		{`{"state":"BUSY"}`, []string{"inputs[2]:state"}},
		{`{"state":1}`, []string{"inputs[2]:state"}},
		{`{"kind":{"a":[1,2]}}`, []string{"inputs[3]:kind"}},
		{`{"kind":{"a":[2,1]}}`, nil},
		{`{"name":"Bob"}`, []string{"inputs[4]:name"}},
		{`{"name":["User"]}`, []string{"inputs[4]:name"}},
		{`{"color":3.0}`, nil},
		{`{"color":null}`, nil},
		{`{"color":true}`, nil},
		{`{"color":"blue"}`, []string{"inputs[5]:color"}},
		{`{"color":"3"}`, []string{"inputs[5]:color"}},
		{`{"deep":{"list":[1,3]}}`, []string{"inputs[6]:deep.list.1"}},
		{`{"deep":{"list":[1]}}`, nil},                                   // an index past the list is absent
		{`{"deep":{"list":"ab"}}`, nil},                                  // so is one into a string
		{`{"deep":{"list":{"1":3}}}`, []string{"inputs[6]:deep.list.1"}}, // a key of an object
	} {
		var got []string
		for _, v := range rs.CheckInputs([]byte(c.args)) {
			got = append(got, v.Rule.ID)
			if v.Reason == "" || len(v.Value) == 0 {
				t.Errorf("%s: violation without a reason or value: %+v", c.args, v)
			}
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: violated %v, want %v", c.args, got, c.want)
		}
	}
}

// delta is a Written over a few writes.
func delta(sets map[string]string, appends map[string][]string) Written {
	return func(p contract.Path, visit func([]byte)) {
		if v, ok := sets[string(p)]; ok {
			visit([]byte(v))
		}
		for _, v := range appends[string(p)] {
			visit([]byte(v))
		}
	}
}

func TestCheckOutputs(t *testing.T) {
	r := mustParse(t, `process_recipes:
  p:
    outputs:
      - {field: "domain.accounts.{from}", min: 0}
      - {field: "domain.note.{tag?}", max_len: 3}
      - {field: "domain.log_x", in: ["a", "b"]}
`)
	rs := r.For("p")
	check := func(args string, w Written) []string {
		var ids []string
		for _, v := range rs.CheckOutputs([]byte(args), w) {
			ids = append(ids, v.Rule.ID+"@"+v.Path)
		}
		return ids
	}
	w := delta(map[string]string{"domain.accounts.alice": "-5", "domain.accounts.bob": "-1", "domain.note.t": `"long"`}, map[string][]string{"domain.log_x": {`"a"`, `"c"`}})
	got := check(`{"from":"alice"}`, w)
	want := []string{"outputs[0]:domain.accounts.{from}@domain.accounts.alice", "outputs[2]:domain.log_x@domain.log_x"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := check(`{"from":"carol","tag":"t"}`, w); len(got) != 2 || !strings.HasPrefix(got[0], "outputs[1]") {
		t.Errorf("got %v: want the note and the log", got)
	}
	if got := check(`{"from":"alice"}`, delta(nil, nil)); got != nil {
		t.Errorf("nothing written, yet %v", got)
	}
}

func judgeRecipe(t *testing.T, level string, extra string) (*Rules, *Tracker) {
	t.Helper()
	r := mustParse(t, "audit: {threshold_max: 2, threshold_min: 1"+extra+"}\nprocess_recipes:\n  p:\n    inputs: [{field: n, max: 0, level: "+level+", message: too big}]\n")
	return r.For("p"), NewTracker(func() time.Time { return time.Unix(100, 0) })
}

func TestLevels(t *testing.T) {
	bad := []byte(`{"n":1}`)
	// I: logged only.
	rs, tr := judgeRecipe(t, "I", "")
	for range 5 {
		if j := tr.Judge(rs, rs.CheckInputs(bad), true); j.Refusal != nil || j.Changed {
			t.Fatalf("I: %+v", j)
		}
	}
	if log, total := tr.Log(0); len(log) != 5 || total != 5 || log[0].Action != "logged" || log[0].Message != "too big" {
		t.Errorf("I: log %+v", log)
	}
	if lv := tr.Levels(); len(lv) != 5 || lv["I"] != 5 || lv["S"] != 0 || lv["C"] != 0 {
		t.Errorf("I: levels %v, want 5 at I and every level present", lv)
	}
	// C: counted only.
	rs, tr = judgeRecipe(t, "C", "")
	for range 5 {
		if j := tr.Judge(rs, rs.CheckInputs(bad), true); j.Refusal != nil || !j.Changed {
			t.Fatalf("C: %+v", j)
		}
	}
	if st, _ := tr.Status(&Recipe{procs: map[string]*Rules{"p": rs}, order: []string{"p"}}); st[0].Count != 5 {
		t.Errorf("C: status %+v", st)
	}
	if lv := tr.Levels(); lv["C"] != 5 || lv["I"] != 0 {
		t.Errorf("C: levels %v", lv)
	}
	// A: every violation refuses.
	rs, tr = judgeRecipe(t, "A", "")
	for range 2 {
		j := tr.Judge(rs, rs.CheckInputs(bad), true)
		if j.Refusal == nil || j.Refusal.Level != Abort || !strings.Contains(j.Refusal.Error(), "too big") {
			t.Fatalf("A: %+v", j)
		}
	}
	// S: the first violation refuses and stops the process until resumed.
	rs, tr = judgeRecipe(t, "S", "")
	if tr.StoppedRefusal("p") != nil {
		t.Fatal("stopped before any violation")
	}
	j := tr.Judge(rs, rs.CheckInputs(bad), true)
	if j.Refusal == nil || j.Refusal.Level != Stop || !j.Changed {
		t.Fatalf("S: %+v", j)
	}
	if ref := tr.StoppedRefusal("p"); ref == nil || !strings.Contains(ref.Error(), "theusctl audit resume p") {
		t.Fatalf("S: not stopped: %v", ref)
	}
	if !tr.Resume("p") || tr.StoppedRefusal("p") != nil || tr.Resume("p") {
		t.Error("S: resume did not lift the stop, or lifted it twice")
	}
}

func TestBlockThreshold(t *testing.T) {
	rs, tr := judgeRecipe(t, "B", ", reset_on_success: false")
	bad := []byte(`{"n":1}`)
	var actions []string
	for i := 1; i <= 4; i++ {
		j := tr.Judge(rs, rs.CheckInputs(bad), true)
		refused := j.Refusal != nil
		if refused != (i > 2) {
			t.Fatalf("violation %d: refused %v; want refusals after threshold_max 2", i, refused)
		}
		if len(j.Warnings) != map[bool]int{true: 1, false: 0}[i <= 2] {
			t.Errorf("violation %d: warnings %+v", i, j.Warnings)
		}
		if refused && (j.Refusal.Count != i || j.Refusal.Max != 2) {
			t.Errorf("violation %d: %+v", i, j.Refusal)
		}
	}
	log, _ := tr.Log(0)
	for _, e := range log {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "warned,warned,refused,refused" {
		t.Errorf("actions %s", got)
	}
	if tr.Clean(rs) {
		t.Error("reset_on_success false, yet Clean reset")
	}
}

func TestResetOnSuccess(t *testing.T) {
	rs, tr := judgeRecipe(t, "B", "")
	bad := []byte(`{"n":1}`)
	tr.Judge(rs, rs.CheckInputs(bad), true)
	tr.Judge(rs, rs.CheckInputs(bad), true)
	if !tr.Clean(rs) || tr.Clean(rs) {
		t.Fatal("Clean did not reset once")
	}
	for i := 1; i <= 2; i++ {
		if j := tr.Judge(rs, rs.CheckInputs(bad), true); j.Refusal != nil {
			t.Fatalf("violation %d after a reset refused", i)
		}
	}
}

func TestJudgeWithoutRecord(t *testing.T) {
	rs, tr := judgeRecipe(t, "B", "")
	vs := rs.CheckInputs([]byte(`{"n":1}`))
	j := tr.Judge(rs, vs, false)
	if j.Refusal != nil || j.Changed || j.Hold == nil {
		t.Fatalf("%+v", j)
	}
	if log, _ := tr.Log(0); len(log) != 0 {
		t.Fatal("a judgement without record logged")
	}
	tr.Record(rs, vs, j.Hold)
	tr.Record(rs, vs, nil)
	if j := tr.Judge(rs, vs, false); j.Refusal == nil || j.Refusal.Count != 3 {
		t.Fatalf("the third violation: %+v", j)
	}
	if log, _ := tr.Log(0); len(log) != 3 {
		t.Fatalf("a refusal is recorded at once: log %d", len(log))
	}
}

func TestSeverity(t *testing.T) {
	r := mustParse(t, "process_recipes:\n  p:\n    inputs: [{field: a, eq: 1, level: A}, {field: b, eq: 1, level: S}, {field: c, eq: 1, level: B, max_threshold: 0}]\n")
	tr := NewTracker(nil)
	j := tr.Judge(r.For("p"), r.For("p").CheckInputs([]byte(`{"a":2,"b":2,"c":2}`)), true)
	if j.Refusal == nil || j.Refusal.Level != Stop {
		t.Fatalf("%+v", j.Refusal)
	}
}

func TestLogBoundedAndState(t *testing.T) {
	rs, tr := judgeRecipe(t, "C", "")
	bad := rs.CheckInputs([]byte(`{"n":1}`))
	for range LogSize + 10 {
		tr.Judge(rs, bad, true)
	}
	log, total := tr.Log(0)
	if len(log) != LogSize || total != LogSize+10 || log[len(log)-1].Count != LogSize+10 || log[0].Count != 11 {
		t.Fatalf("log of %d (total %d), first count %d, last %d", len(log), total, log[0].Count, log[len(log)-1].Count)
	}
	if last, _ := tr.Log(3); len(last) != 3 || last[2].Count != LogSize+10 {
		t.Errorf("Log(3) %+v", last)
	}
	st := NewTracker(nil)
	rsS, trS := judgeRecipe(t, "S", "")
	trS.Judge(rsS, rsS.CheckInputs([]byte(`{"n":1}`)), true)
	var both map[string]json.RawMessage
	if err := json.Unmarshal(trS.Export(), &both); err != nil {
		t.Fatal(err)
	}
	if err := st.Import(tr.Export()); err != nil {
		t.Fatal(err)
	}
	rules, _ := st.Status(&Recipe{procs: map[string]*Rules{"p": rs}, order: []string{"p"}})
	if rules[0].Count != LogSize+10 {
		t.Errorf("imported count %d", rules[0].Count)
	}
	if err := st.Import(trS.Export()); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Stopped("p"); !ok {
		t.Error("the stop was not imported")
	}
	if err := st.Import([]byte("{")); err == nil {
		t.Error("a bad state imported")
	}
}

func TestPrune(t *testing.T) {
	rs, tr := judgeRecipe(t, "C", "")
	tr.Judge(rs, rs.CheckInputs([]byte(`{"n":1}`)), true)
	same := mustParse(t, "process_recipes:\n  p:\n    inputs: [{field: n, max: 5, level: C}]\n")
	if tr.Prune(same) {
		t.Error("a rule at the same place and field lost its counter")
	}
	other := mustParse(t, "process_recipes:\n  p:\n    inputs: [{field: m, max: 5, level: C}]\n")
	if !tr.Prune(other) {
		t.Error("a counter of a rule gone was kept")
	}
}

// Held violations count against threshold_max until recorded or
// released; several violations of one rule in one judgement count one
// each.
func TestJudgeHolds(t *testing.T) {
	rs, tr := judgeRecipe(t, "B", "") // threshold_max 2
	vs := rs.CheckInputs([]byte(`{"n":1}`))
	h1 := tr.Judge(rs, vs, false).Hold
	h2 := tr.Judge(rs, vs, false).Hold
	if h1 == nil || h2 == nil {
		t.Fatal("nothing held")
	}
	if j := tr.Judge(rs, vs, false); j.Refusal == nil || j.Refusal.Count != 3 {
		t.Fatalf("a third violation while two are held: %+v", j)
	}
	// The refusal was recorded: 1 counted, 2 held. Release one: room for none.
	tr.Release(h1)
	tr.Release(h1) // a second release of the same hold is nothing
	if j := tr.Judge(rs, vs, false); j.Refusal == nil {
		t.Fatalf("count 1 + held 1 + 1 passed threshold_max 2: %+v", j)
	}
	tr.Record(rs, vs, h2) // counted 3, held 0
	if st, _ := tr.Status(&Recipe{procs: map[string]*Rules{"p": rs}, order: []string{"p"}}); st[0].Count != 3 {
		t.Fatalf("count %d, want 3", st[0].Count)
	}
	// Two violations of one rule in one judgement: both count.
	rs, tr = judgeRecipe(t, "B", "")
	two := append(slices.Clone(vs), vs...)
	if j := tr.Judge(rs, two, false); j.Refusal != nil {
		t.Fatalf("2 of threshold_max 2: %+v", j)
	}
	if j := tr.Judge(rs, vs, false); j.Refusal == nil || j.Refusal.Count != 3 {
		t.Fatalf("a third violation: %+v", j)
	}
}

// YAML aliases are refused wherever they are, each at its line: a few
// hundred bytes of nested aliases would otherwise expand to gigabytes
// (a "billion laughs") when a value is decoded.
func TestParseRefusesAliases(t *testing.T) {
	bomb := "process_recipes:\n  p:\n    inputs:\n      - field: a\n        eq:\n          a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		bomb += fmt.Sprintf("          %s: &%s [%s]\n", name, name, strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ","))
		prev = name

	}
	_, err := Parse("bomb.yaml", []byte(bomb))
	var le *LoadError
	if !errors.As(err, &le) || !strings.Contains(le.Problems[0].String(), "bomb.yaml:7: ") || !strings.Contains(err.Error(), "alias") {
		t.Fatalf("a YAML bomb: %v", err)
	}
	_, err = Parse("r.yaml", []byte("process_recipes:\n  p:\n    inputs:\n      - &r {field: a, eq: 1}\n      - *r\n"))
	if err == nil || !strings.Contains(err.Error(), "r.yaml:5: ") || !strings.Contains(err.Error(), "alias") {
		t.Fatalf("an aliased rule: %v", err)
	}
}

package flux

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// render writes one line per instruction: pc, op, kind and the fields
// that op uses, with the position as line:col.
func render(p *Program) string {
	var b strings.Builder
	for pc, in := range p.Instrs {
		fmt.Fprintf(&b, "%d %s %s @%d:%d", pc, in.Op, in.Kind, in.Pos.Line, in.Pos.Col)
		switch in.Op {
		case OpProcess:
			fmt.Fprintf(&b, " %s onfail=%d", in.Process, in.OnFail)
			for _, a := range in.Args {
				if a.Expr != nil {
					fmt.Fprintf(&b, " %s=${%s}", a.Key, a.Expr)
				} else {
					fmt.Fprintf(&b, " %s=%s", a.Key, a.JSON)
				}
			}
		case OpBranch:
			fmt.Fprintf(&b, " [%s] target=%d", in.Cond, in.Target)
		case OpJump, OpFail:
			fmt.Fprintf(&b, " target=%d", in.Target)
		case OpWait:
			fmt.Fprintf(&b, " %s timeout=%s", in.Signal, in.Timeout)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func mustLoad(t *testing.T, src string) *File {
	t.Helper()
	f, err := Load("w.yaml", []byte(src), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return f
}

func TestCompileShapes(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{
			name: "bare process name",
			src:  "steps:\n  - a\n  - b\n",
			want: "0 process process @2:5 a onfail=-1\n1 process process @3:5 b onfail=-1\n",
		},
		{
			name: "process with args",
			src: "steps:\n  - process: counters.add\n    args:\n      n: 2\n      s: \"x\"\n      l: [1, true, null, {a: b}]\n" +
				"      e: ${ len(domain.get('log', [])) + 1 }\n      f: '${args.x}'\n      g: 'not ${ an } expr'\n",
			want: "0 process process @2:5 counters.add onfail=-1 n=2 s=\"x\" l=[1,true,null,{\"a\":\"b\"}]" +
				" e=${len(domain.get('log', [])) + 1} f=${args.x} g=\"not ${ an } expr\"\n",
		},
		{
			name: "if without else",
			src:  "steps:\n  - flux: if\n    condition: domain.x > 1\n    then:\n      - a\n      - b\n  - c\n",
			want: "0 branch if @2:5 [domain.x > 1] target=3\n1 process process @5:9 a onfail=-1\n" +
				"2 process process @6:9 b onfail=-1\n3 process process @7:5 c onfail=-1\n",
		},
		{
			name: "if with else",
			src:  "steps:\n  - flux: if\n    condition: True\n    then: [a]\n    else: [b, c]\n",
			want: "0 branch if @2:5 [True] target=3\n1 process process @4:12 a onfail=-1\n2 jump jump @5:5 target=5\n" +
				"3 process process @5:12 b onfail=-1\n4 process process @5:15 c onfail=-1\n",
		},
		{
			name: "while",
			src:  "steps:\n  - flux: while\n    condition: len(domain.get('action_log', [])) < 5\n    do:\n      - a\n  - b\n",
			want: "0 branch while @2:5 [len(domain.get('action_log', [])) < 5] target=3\n" +
				"1 process process @5:9 a onfail=-1\n2 jump jump @2:5 target=0\n3 process process @6:5 b onfail=-1\n",
		},
		{
			name: "run",
			src:  "steps:\n  - flux: run\n    steps:\n      - a\n      - b\n",
			want: "0 enter run @2:5\n1 process process @4:9 a onfail=-1\n2 process process @5:9 b onfail=-1\n",
		},
		{
			name: "wait with duration",
			src:  "steps:\n  - flux: wait\n    signal: domain.cmd_go\n    timeout: 1m30s\n",
			want: "0 wait wait @2:5 domain.cmd_go timeout=1m30s\n",
		},
		{
			name: "wait with seconds, above a signal",
			src:  "steps:\n  - flux: wait\n    signal: domain\n    timeout: 2.5\n  - flux: wait\n    signal: domain.orders.sig_x\n",
			want: "0 wait wait @2:5 domain timeout=2.5s\n1 wait wait @5:5 domain.orders.sig_x timeout=0s\n",
		},
		{
			name: "on_fail ending with continue",
			src:  "steps:\n  - process: a\n    on_fail:\n      - b\n      - flux: continue\n  - c\n",
			want: "0 process process @2:5 a onfail=2\n1 jump jump @3:5 target=4\n2 process process @4:9 b onfail=-1\n" +
				"3 jump jump @3:5 target=4\n4 process process @6:5 c onfail=-1\n",
		},
		{
			name: "on_fail without continue",
			src:  "steps:\n  - process: a\n    on_fail: [b]\n  - c\n",
			want: "0 process process @2:5 a onfail=2\n1 jump jump @3:5 target=4\n2 process process @3:15 b onfail=-1\n" +
				"3 fail fail @3:5 target=0\n4 process process @4:5 c onfail=-1\n",
		},
		{
			name: "on_fail inside on_fail",
			src:  "steps:\n  - process: a\n    on_fail:\n      - process: b\n        on_fail:\n          - flux: continue\n      - flux: continue\n",
			want: "0 process process @2:5 a onfail=2\n1 jump jump @3:5 target=6\n2 process process @4:9 b onfail=4\n" +
				"3 jump jump @5:9 target=5\n4 jump jump @5:9 target=5\n5 jump jump @3:5 target=6\n",
		},
		{
			name: "timeout as a quoted number of seconds",
			src:  "steps:\n  - flux: wait\n    signal: global.sig_x\n    timeout: '90'\n",
			want: "0 wait wait @2:5 global.sig_x timeout=1m30s\n",
		},
		{
			name: "nested while in if in run",
			src: "steps:\n  - flux: run\n    steps:\n      - flux: if\n        condition: args.go\n        then:\n" +
				"          - flux: while\n            condition: not signal.domain.cmd_stop\n            do: [a]\n",
			want: "0 enter run @2:5\n1 branch if @4:9 [args.go] target=5\n2 branch while @7:13 [not signal.domain.cmd_stop] target=5\n" +
				"3 process process @9:18 a onfail=-1\n4 jump jump @7:13 target=2\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustLoad(t, tt.src)
			if f.Kind != KindWorkflow || f.Machine != nil {
				t.Fatalf("Kind = %v, Machine = %v; want a workflow", f.Kind, f.Machine)
			}
			if got := render(f.Workflow); got != tt.want {
				t.Errorf("program:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestLoadTestdataAllSteps(t *testing.T) {
	src, err := os.ReadFile("testdata/all_steps.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Load("testdata/all_steps.yaml", src, func(p string) bool { return p == "a" || p == "b" || p == "counters.add" })
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "all_steps" || f.Path != "testdata/all_steps.yaml" {
		t.Errorf("Name, Path = %q, %q", f.Name, f.Path)
	}
	if want := (Meta{Name: "all steps", Description: "every step kind", Version: "1.0"}); f.Meta != want {
		t.Errorf("Meta = %+v, want %+v", f.Meta, want)
	}
	if n := len(f.Workflow.Instrs); n != 20 {
		t.Errorf("%d instructions, want 20:\n%s", n, render(f.Workflow))
	}
	w := f.Workflow.Instrs[11]
	if w.Op != OpWait || w.Signal != "domain.cmd_go" || w.Timeout != 30*time.Second {
		t.Errorf("instr 11 = %+v, want the wait", w)
	}
}

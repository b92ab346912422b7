package flux

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Hostile conditions are refused at load, or fail with an *EvalError,
// without hanging or allocating without bound.
func TestSandboxRefusesAtCompile(t *testing.T) {
	tests := []struct {
		src  string
		want string // a substring of the compile error
	}{
		{"1..1000000000", "the range operator .. is not allowed"},
		{"len(filter(1..100000000, {# > 0}))", "the range operator .. is not allowed"},
		{"map(domain.l, map(domain.l, map(domain.l, #)))", "predicates ({...}, #) are not available"},
		{"reduce(domain.l, #acc + #)", "predicates ({...}, #) are not available"},
		{"count(domain.l, # > 1)", "predicates ({...}, #) are not available"},
		{"let x = 'a' + 'a'; let y = x + x; y + y", "let is not available"},
		{"$env.domain", "$env is not allowed"},
		{"repeat('x', 1000000000)", "unknown name repeat"},
		{"now()", "unknown name now"},
		{"toJSON(domain)", "unknown name toJSON"},
		{"fromJSON('[1]')", "unknown name fromJSON"},
		{"domain.x.__class__()", "method __class__() is not available"},
		{"domain.x.count('a')", "method count() is not available"},
		{"'a' * 1000000000", "mismatched types string and int"},
		{strings.Repeat("1+", 1000) + "1", "exceeds maximum allowed nodes"},
		{strings.Repeat("1+", MaxExprLen/2) + "1", "over the limit of 4096"},
		{"", "expression is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.src[:min(len(tt.src), 40)], func(t *testing.T) {
			_, err := compileExpr(tt.src, Pos{File: "w.yaml", Line: 1, Col: 1})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("compile error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSandboxBoundsEvaluation(t *testing.T) {
	big := make([]any, maxBuiltItems)
	for i := range big {
		big[i] = float64(i)
	}
	dom := map[string]any{"big": big, "s": strings.Repeat("x", maxBuiltLen/2+1)}
	hostile := []string{
		"range(1000000000)",
		"len(range(-9223372036854775807, 9223372036854775807))",
		"range(0, 1000000000000, 1)",
		"domain.big + domain.big",
		"domain.big + range(1)",
		"domain.s + domain.s",
		"str(domain.big + domain.big)",
		"str([domain.s, domain.s, domain.s])",
		"sorted([1, 'a'])",
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, src := range hostile {
			e := mustExpr(t, src)
			_, err := e.Eval(&Env{Domain: func() (map[string]any, error) { return dom, nil }})
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Errorf("%s: Eval = %v; want an *EvalError", src, err)
			}
		}
		// Deeply nested calls run in bounded time: the node limit keeps
		// the nesting under 1024.
		deep := strings.Repeat("abs(", 300) + "-1" + strings.Repeat(")", 300)
		if v, err := mustExpr(t, deep).Eval(nil); err != nil || v != 1 {
			t.Errorf("deep = %v, %v", v, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a hang detector, not a speed test
		t.Fatal("hostile conditions did not return")
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Errorf("hostile conditions allocated %d MiB in all, want < 256", alloc>>20)
	}
}

func TestSandboxLimitErrorsAreTyped(t *testing.T) {
	_, err := mustExpr(t, "range(1000000000)").Eval(nil)
	if !errors.Is(err, errTooLarge) {
		t.Fatalf("Eval = %v; want errTooLarge inside", err)
	}
	if want := "w.yaml:3:16: range(1000000000): range(): result too large (over 10000 items)"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

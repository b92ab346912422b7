package flux

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Limits of the condition sandbox (see the package doc, Sandbox).
const (
	MaxExprLen   = 4096 // bytes of one condition or argument expression
	maxExprNodes = 1024 // AST nodes of one expression, checked by expr at compile
	exprMemory   = 1e6  // expr's memory budget for one evaluation (its units)
)

// Expr is a compiled condition or argument expression. It is immutable and
// safe for concurrent use.
type Expr struct {
	src  string
	pos  Pos
	prog *vm.Program
	uses uint8
}

// Env is what an expression is evaluated against.
type Env struct {
	// Domain and Global load the committed state under those layers as nested maps (see Tree);
	// called at most once per evaluation and only when the expression uses the name.
	Domain, Global func() (map[string]any, error)
	Args           map[string]any
	Signal         map[string]any // nested like Tree: the signals this run has seen since its previous step
	Run            RunInfo
}

// RunInfo is `run` in an expression: run.id and run.ops.
type RunInfo struct {
	ID  string
	Ops int
}

// EvalError is returned by Eval and Truth for a runtime failure (a type
// error, a result over a limit, a failing Domain or Global loader). It names
// the expression and its position in the file.
type EvalError struct {
	Pos  Pos
	Expr string
	Err  error
}

func (e *EvalError) Error() string {
	msg := e.Err.Error()
	var fe *file.Error
	if errors.As(e.Err, &fe) {
		msg = fe.Message // without expr's snippet of the source
	}
	return fmt.Sprintf("%s: %s: %s", e.Pos, e.Expr, msg)
}

func (e *EvalError) Unwrap() error { return e.Err }

// String returns the source text.
func (e *Expr) String() string { return e.src }

// Pos returns where the expression is in its file.
func (e *Expr) Pos() Pos { return e.pos }

// Uses reports whether the expression references the top-level name
// (domain, global, args, signal, run).
func (e *Expr) Uses(name string) bool {
	bit := names[name]
	return bit != 0 && e.uses&bit != 0
}

// compileExpr compiles src, found at pos. The error is a message for a
// Problem at pos.
func compileExpr(src string, pos Pos) (*Expr, error) {
	if len(src) > MaxExprLen {
		return nil, fmt.Errorf("expression is %d bytes, over the limit of %d", len(src), MaxExprLen)
	}
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("expression is empty")
	}
	p := &pyPatcher{}
	opts := []expr.Option{
		expr.Env(map[string]any{
			"domain": map[string]any{}, "global": map[string]any{},
			"args": map[string]any{}, "signal": map[string]any{},
			"run": map[string]any{},
		}),
		expr.DisableAllBuiltins(),
		expr.MaxNodes(maxExprNodes),
		expr.Patch(p),
	}
	for name, fn := range funcs {
		opts = append(opts, expr.Function(name, fn))
	}
	for name, fn := range opFuncs {
		opts = append(opts, expr.Function(name, fn))
	}
	prog, err := compileSafely(pySyntax(src), opts)
	if p.err != nil {
		return nil, fmt.Errorf("expression %s: %w", quoteShort(src), p.err)
	}
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("expression %s does not compile: %s (column %d)", quoteShort(src), fe.Message, fe.Column+1)
		}
		return nil, fmt.Errorf("expression %s does not compile: %w", quoteShort(src), err)
	}
	return &Expr{src: src, pos: pos, prog: prog, uses: p.uses}, nil
}

// quoteShort quotes src for a message, cut to 80 bytes.
func quoteShort(src string) string {
	if len(src) <= 80 {
		return strconv.Quote(src)
	}
	return strconv.Quote(src[:80]) + "..."
}

// compileSafely is expr.Compile, with a panic inside expr turned into an
// error: a file is input, and Load must not crash on any input.
func compileSafely(src string, opts []expr.Option) (prog *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("expr: %v", r)
		}
	}()
	return expr.Compile(src, opts...)
}

// Eval evaluates the expression against env. A failure is an *EvalError.
func (e *Expr) Eval(env *Env) (any, error) {
	return e.eval(newEvalState(env))
}

// Truth is Eval followed by Python truthiness: None, False, 0, "", [] and
// {} are false, everything else is true.
func (e *Expr) Truth(env *Env) (bool, error) {
	v, err := e.Eval(env)
	if err != nil {
		return false, err
	}
	return truth(v), nil
}

func (e *Expr) evalError(err error) error {
	return &EvalError{Pos: e.pos, Expr: e.src, Err: err}
}

// evalState holds the layers loaded for one evaluation (one Eval, or all
// the arguments of one EvalArgs), so each loader runs at most once.
type evalState struct {
	env  *Env
	vars map[string]any
}

func newEvalState(env *Env) *evalState {
	if env == nil {
		env = &Env{}
	}
	return &evalState{env: env, vars: map[string]any{
		"args":   orEmpty(env.Args),
		"signal": orEmpty(env.Signal),
		"run":    map[string]any{"id": env.Run.ID, "ops": env.Run.Ops},
	}}
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// load runs the loader of a layer the expression uses, once per state.
func (st *evalState) load(name string, loader func() (map[string]any, error)) error {
	if _, done := st.vars[name]; done {
		return nil
	}
	if loader == nil {
		st.vars[name] = map[string]any{}
		return nil
	}
	m, err := loader()
	if err != nil {
		return fmt.Errorf("loading %s: %w", name, err)
	}
	st.vars[name] = orEmpty(m)
	return nil
}

func (e *Expr) eval(st *evalState) (out any, err error) {
	if e.Uses("domain") {
		if err := st.load("domain", st.env.Domain); err != nil {
			return nil, e.evalError(err)
		}
	}
	if e.Uses("global") {
		if err := st.load("global", st.env.Global); err != nil {
			return nil, e.evalError(err)
		}
	}
	machine := vm.VM{MemoryBudget: exprMemory}
	out, err = machine.Run(e.prog, st.vars)
	if err != nil {
		return nil, e.evalError(err)
	}
	return out, nil
}

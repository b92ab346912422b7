package lint

import (
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/analysis"
)

// runE08 taints, within each function, what a constant PRIVATE path is
// read into (the pointer given to ctx.Get, the first result of ctx.Raw,
// Children and Tensor), then whatever is assigned from an expression that
// mentions a tainted variable, or filled through a pointer by a call
// given one. A tainted value given to ctx.Set, Append or Emit, or
// returned by the handler, is reported.
func runE08(pass *analysis.Pass, r *reporter) {
	f := found(pass)
	handlers := map[*ast.BlockStmt]bool{}
	for _, p := range f.Processes {
		if len(p.Funcs) > 0 {
			handlers[p.Funcs[0].Body] = true
		}
	}
	for _, fn := range f.Funcs {
		t := &taint{info: pass.TypesInfo, vars: map[*types.Var]bool{}}
		t.scan(fn.Body, handlers[fn.Body], r)
	}
}

type taint struct {
	info *types.Info
	vars map[*types.Var]bool
}

func (t *taint) scan(body *ast.BlockStmt, handler bool, r *reporter) {
	depth := 0 // function literals entered
	var stack []ast.Node
	ast.Inspect(body, func(n ast.Node) bool {
		if n == nil {
			if _, ok := stack[len(stack)-1].(*ast.FuncLit); ok {
				depth--
			}
			stack = stack[:len(stack)-1]
			return true
		}
		stack = append(stack, n)
		switch n := n.(type) {
		case *ast.FuncLit:
			depth++
		case *ast.AssignStmt:
			t.assign(n.Lhs, n.Rhs)
		case *ast.ValueSpec:
			lhs := make([]ast.Expr, len(n.Names))
			for i, id := range n.Names {
				lhs[i] = id
			}
			t.assign(lhs, n.Values)
		case *ast.RangeStmt:
			if t.mentions(n.X) {
				t.mark(n.Key)
				t.mark(n.Value)
			}
		case *ast.CallExpr:
			t.call(n, r)
		case *ast.ReturnStmt:
			if handler && depth == 0 {
				for _, e := range n.Results {
					if t.mentions(e) {
						r.report(e.Pos(), "returns a value read from a PRIVATE path: PRIVATE data never leaves the runtime")
						break
					}
				}
			}
		}
		return true
	})
}

func (t *taint) assign(lhs, rhs []ast.Expr) {
	if len(rhs) == 1 && len(lhs) > 1 {
		if call, ok := ast.Unparen(rhs[0]).(*ast.CallExpr); ok && t.source(call) {
			t.mark(lhs[0])
			return
		}
	}
	for i, l := range lhs {
		from := rhs
		if len(lhs) == len(rhs) {
			from = rhs[i : i+1]
		}
		for _, e := range from {
			if t.source(e) || t.mentions(e) {
				if typ := t.info.TypeOf(l); !isError(typ) && (len(lhs) == 1 || !isBool(typ)) {
					t.mark(l)
				}
			}
		}
	}
}

// An error carries no value read (its text might: returning
// fmt.Errorf("%s", secret) mentions secret and is reported); a bool
// beside a value is the comma-ok of its read.
func isError(typ types.Type) bool {
	return typ != nil && types.Identical(typ, types.Universe.Lookup("error").Type())
}

func isBool(typ types.Type) bool {
	b, ok := typ.(*types.Basic)
	return ok && b.Kind() == types.Bool
}

// source reports whether e is a Ctx read of a constant PRIVATE path.
func (t *taint) source(e ast.Expr) bool {
	call, ok := ast.Unparen(e).(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return false
	}
	c := ctxCall{method: ctxMethod(t.info, call), call: call}
	c.path, c.known = constString(t.info, call.Args[0])
	return c.method != mGet && privateRead(c)
}

func (t *taint) call(call *ast.CallExpr, r *reporter) {
	m := ctxMethod(t.info, call)
	switch {
	case (m == mSet || m == mAppend || m == mEmit) && len(call.Args) == 2 && t.mentions(call.Args[1]):
		r.report(call.Args[1].Pos(), "ctx.%s is given a value read from a PRIVATE path: PRIVATE data never leaves the runtime", m)
		return
	case m == mGet && len(call.Args) == 2:
		c := ctxCall{method: m, call: call}
		c.path, c.known = constString(t.info, call.Args[0])
		if privateRead(c) {
			t.mark(call.Args[1])
		}
		return
	}
	tainted := false
	for _, a := range call.Args {
		tainted = tainted || t.mentions(a)
	}
	if tainted { // json.Unmarshal(secret, &v) fills v with it
		for _, a := range call.Args {
			if u, ok := ast.Unparen(a).(*ast.UnaryExpr); ok && u.Op == token.AND {
				t.mark(u.X)
			}
		}
	}
}

// mark taints the variable e writes into (x, &x, x.f, x[i], *x).
func (t *taint) mark(e ast.Expr) {
	for e != nil {
		switch x := ast.Unparen(e).(type) {
		case *ast.Ident:
			if v, ok := t.info.ObjectOf(x).(*types.Var); ok {
				t.vars[v] = true
			}
			return
		case *ast.UnaryExpr:
			e = x.X
		case *ast.SelectorExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.StarExpr:
			e = x.X
		default:
			return
		}
	}
}

// mentions reports whether e uses a tainted variable, outside function
// literals and Ctx calls (a Ctx call returns an error or what it reads,
// never what it is given).
func (t *taint) mentions(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.CallExpr:
			if ctxMethod(t.info, n) != "" {
				return false
			}
		case *ast.Ident:
			if v, ok := t.info.Uses[n].(*types.Var); ok && t.vars[v] {
				found = true
			}
		}
		return !found
	})
	return found
}

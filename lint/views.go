package lint

import (
	"go/ast"
	"go/token"
	"go/types"
	"slices"

	"golang.org/x/tools/go/analysis"
)

// A view is memory a process may read but not change: the bytes ctx.Raw
// returns, a tensor from ctx.Tensor (its Bytes, its worker.Elems) and
// the values of the map ctx.Children returns. They alias the snapshot.
type viewKind uint8

const (
	noView viewKind = iota
	sliceView
	tensorView
	mapView // a map whose values are slice views
)

type view struct {
	kind viewKind
	from string // the Ctx method it came from, for messages
}

// viewFlow follows views through the functions of one package: within a
// function in source order, and across calls to functions of the package
// through two summaries, memoized: which results are views, and whether
// a view passed as a parameter is written.
type viewFlow struct {
	info    *types.Info
	found   *Found
	results map[*types.Func][]view
	writes  map[paramKey]bool
}

type paramKey struct {
	fn   *types.Func
	i    int
	kind viewKind
}

func runE05(pass *analysis.Pass, r *reporter) {
	vf := &viewFlow{info: pass.TypesInfo, found: found(pass), results: map[*types.Func][]view{}, writes: map[paramKey]bool{}}
	for _, f := range vf.found.Funcs {
		vf.scan(f.Body, nil, func(pos token.Pos, v view, how string) {
			r.report(pos, "%s a read view from ctx.%s: it aliases the snapshot; copy it first (slices.Clone) or write a new value with ctx.Set/NewTensor", how, v.from)
		})
	}
}

// scan walks body with the views in state (parameters, for summaries),
// calls write for each write into a view, and returns the views each
// return statement of body (not of a nested function literal) returns.
func (vf *viewFlow) scan(body *ast.BlockStmt, state map[*types.Var]view, write func(token.Pos, view, string)) [][]view {
	if state == nil {
		state = map[*types.Var]view{}
	}
	var returns [][]view
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
		case *ast.ReturnStmt:
			if depth == 0 {
				vs := make([]view, len(n.Results))
				for i, e := range n.Results {
					vs[i] = vf.kindOf(state, e)
				}
				returns = append(returns, vs)
			}
		case *ast.AssignStmt:
			vf.assign(state, n, write)
		case *ast.ValueSpec:
			if len(n.Values) > 0 {
				lhs := make([]ast.Expr, len(n.Names))
				for i, id := range n.Names {
					lhs[i] = id
				}
				vf.bind(state, lhs, n.Values)
			}
		case *ast.RangeStmt:
			if v := vf.kindOf(state, n.X); v.kind == mapView && n.Value != nil {
				vf.set(state, n.Value, view{sliceView, v.from})
			}
		case *ast.IncDecStmt:
			vf.checkLHS(state, n.X, write)
		case *ast.CallExpr:
			vf.checkCall(state, n, write)
		}
		return true
	})
	return returns
}

func (vf *viewFlow) assign(state map[*types.Var]view, a *ast.AssignStmt, write func(token.Pos, view, string)) {
	for _, lhs := range a.Lhs {
		vf.checkLHS(state, lhs, write)
	}
	if a.Tok == token.ASSIGN || a.Tok == token.DEFINE {
		vf.bind(state, a.Lhs, a.Rhs)
	}
}

// bind records the views lhs receive from rhs.
func (vf *viewFlow) bind(state map[*types.Var]view, lhs, rhs []ast.Expr) {
	if len(lhs) == len(rhs) {
		for i := range lhs {
			vf.set(state, lhs[i], vf.kindOf(state, rhs[i]))
		}
		return
	}
	if len(rhs) != 1 {
		return
	}
	var vs []view
	switch r := ast.Unparen(rhs[0]).(type) {
	case *ast.CallExpr:
		vs = vf.callViews(state, r)
	case *ast.IndexExpr: // v, ok := m[k]
		vs = []view{vf.kindOf(state, r)}
	}
	for i, l := range lhs {
		var v view
		if i < len(vs) {
			v = vs[i]
		}
		vf.set(state, l, v)
	}
}

func (vf *viewFlow) set(state map[*types.Var]view, lhs ast.Expr, v view) {
	id, ok := ast.Unparen(lhs).(*ast.Ident)
	if !ok {
		return
	}
	obj, _ := vf.info.ObjectOf(id).(*types.Var)
	if obj == nil {
		return
	}
	if v.kind == noView {
		delete(state, obj)
		return
	}
	state[obj] = v
}

// kindOf returns the view e is, if any.
func (vf *viewFlow) kindOf(state map[*types.Var]view, e ast.Expr) view {
	switch e := ast.Unparen(e).(type) {
	case *ast.Ident:
		if obj, ok := vf.info.ObjectOf(e).(*types.Var); ok {
			return state[obj]
		}
	case *ast.SliceExpr:
		if v := vf.kindOf(state, e.X); v.kind == sliceView {
			return v
		}
	case *ast.IndexExpr:
		if v := vf.kindOf(state, e.X); v.kind == mapView {
			return view{sliceView, v.from}
		}
	case *ast.CallExpr:
		if vs := vf.callViews(state, e); len(vs) > 0 {
			return vs[0]
		}
	}
	return view{}
}

// callViews returns the views a call's results are.
func (vf *viewFlow) callViews(state map[*types.Var]view, call *ast.CallExpr) []view {
	switch m := ctxMethod(vf.info, call); m {
	case mRaw:
		return []view{{sliceView, m}}
	case mTensor:
		return []view{{tensorView, m}}
	case mChildren:
		return []view{{mapView, m}}
	}
	fn := callee(vf.info, call)
	if fn == nil {
		return nil
	}
	if isWorkerFunc(fn, "Elems") && len(call.Args) == 1 {
		if v := vf.kindOf(state, call.Args[0]); v.kind == tensorView {
			return []view{{sliceView, v.from}}
		}
		return nil
	}
	if sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok && fn.Name() == "Bytes" && isWorkerType(vf.info.TypeOf(sel.X), "Tensor") {
		if v := vf.kindOf(state, sel.X); v.kind == tensorView {
			return []view{{sliceView, v.from}}
		}
		return nil
	}
	return vf.resultViews(fn)
}

// resultViews summarizes a function of the package: the view each of its
// results is when some return statement returns one.
func (vf *viewFlow) resultViews(fn *types.Func) []view {
	d := vf.found.decl(fn)
	if d == nil {
		return nil
	}
	fn = fn.Origin()
	if vs, ok := vf.results[fn]; ok {
		return vs // nil while being computed: a recursive call returns no view
	}
	vf.results[fn] = nil
	var out []view
	for _, ret := range vf.scan(d.Body, nil, func(token.Pos, view, string) {}) {
		if out == nil {
			out = make([]view, len(ret))
		}
		for i, v := range ret {
			if i < len(out) && out[i].kind == noView {
				out[i] = v
			}
		}
	}
	vf.results[fn] = out
	return out
}

// paramWritten summarizes a function of the package: whether it writes
// into its i-th parameter when that is a view of kind k.
func (vf *viewFlow) paramWritten(fn *types.Func, i int, k viewKind) bool {
	d := vf.found.decl(fn)
	params := fn.Signature().Params()
	if d == nil || i >= params.Len() || (fn.Signature().Variadic() && i == params.Len()-1) {
		return false
	}
	key := paramKey{fn.Origin(), i, k}
	if w, ok := vf.writes[key]; ok {
		return w // false while being computed
	}
	vf.writes[key] = false
	p := params.At(i)
	if fn.Origin() != fn {
		p = fn.Origin().Signature().Params().At(i)
	}
	written := false
	vf.scan(d.Body, map[*types.Var]view{p: {k, ""}}, func(token.Pos, view, string) { written = true })
	vf.writes[key] = written
	return written
}

// checkLHS reports an assignment into a view: v[i] = x.
func (vf *viewFlow) checkLHS(state map[*types.Var]view, lhs ast.Expr, write func(token.Pos, view, string)) {
	if ix, ok := ast.Unparen(lhs).(*ast.IndexExpr); ok {
		if v := vf.kindOf(state, ix.X); v.kind == sliceView {
			write(lhs.Pos(), v, "assigns into")
		}
	}
}

// mutators are functions that write into their first argument.
var mutators = map[string][]string{
	"slices":          {"Reverse", "Sort", "SortFunc", "SortStableFunc"},
	"sort":            {"Float64s", "Ints", "Slice", "SliceStable", "Strings"},
	"encoding/binary": {"PutUint16", "PutUint32", "PutUint64", "PutVarint", "PutUvarint"},
}

// checkCall reports a call that writes into a view: copy, clear, append
// on one, a mutator from the standard library, or a function of the
// package that writes the parameter it is passed.
func (vf *viewFlow) checkCall(state map[*types.Var]view, call *ast.CallExpr, write func(token.Pos, view, string)) {
	if len(call.Args) == 0 {
		return
	}
	if b, ok := vf.info.Uses[identOf(ast.Unparen(call.Fun))].(*types.Builtin); ok {
		switch b.Name() {
		case "copy", "clear", "append":
			if v := vf.kindOf(state, call.Args[0]); v.kind == sliceView {
				write(call.Pos(), v, b.Name()+" writes into")
			}
		}
		return
	}
	fn := callee(vf.info, call)
	if fn == nil || fn.Pkg() == nil {
		return
	}
	if slices.Contains(mutators[fn.Pkg().Path()], fn.Name()) {
		if v := vf.kindOf(state, call.Args[0]); v.kind == sliceView {
			write(call.Pos(), v, qualified(fn)+" writes into")
		}
		return
	}
	for i, a := range call.Args {
		if v := vf.kindOf(state, a); v.kind != noView && vf.paramWritten(fn, i, v.kind) {
			write(call.Pos(), v, "passes to "+fn.Name()+", which writes into")
		}
	}
}

package lint

import (
	"go/ast"
	"go/constant"
	"go/types"
	"strings"

	"golang.org/x/tools/go/types/typeutil"
)

// constString returns the value of e when it is a string constant.
func constString(info *types.Info, e ast.Expr) (string, bool) {
	tv, ok := info.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	return constant.StringVal(tv.Value), true
}

// readContract reads a worker.Contract composite literal. Anything else
// (a variable, a call) leaves every part unknown.
func readContract(info *types.Info, e ast.Expr) Contract {
	lit, ok := ast.Unparen(e).(*ast.CompositeLit)
	if !ok || !isWorkerType(info.TypeOf(lit), "Contract") {
		return Contract{}
	}
	c := Contract{InputsKnown: true, OutputsKnown: true, EffectKnown: true}
	fields := []string{"Inputs", "Outputs", "Effect"}
	for i, elt := range lit.Elts {
		name, val := "", elt
		if kv, ok := elt.(*ast.KeyValueExpr); ok {
			if id, ok := kv.Key.(*ast.Ident); ok {
				name = id.Name
			}
			val = kv.Value
		} else if i < len(fields) {
			name = fields[i]
		}
		switch name {
		case "Inputs":
			c.Inputs, c.InputsKnown = readPaths(info, val)
		case "Outputs":
			c.Outputs, c.OutputsKnown = readPaths(info, val)
		case "Effect":
			tv := info.Types[val]
			c.EffectKnown = tv.Value != nil && tv.Value.Kind() == constant.Bool
			c.Effect = c.EffectKnown && constant.BoolVal(tv.Value)
		}
	}
	return c
}

// readPaths reads a []string literal of constants; nil is known and empty.
func readPaths(info *types.Info, e ast.Expr) ([]Decl, bool) {
	if tv := info.Types[e]; tv.IsNil() {
		return nil, true
	}
	lit, ok := ast.Unparen(e).(*ast.CompositeLit)
	if !ok {
		return nil, false
	}
	var out []Decl
	for _, elt := range lit.Elts {
		s, ok := constString(info, elt)
		if !ok {
			return nil, false
		}
		out = append(out, Decl{Path: s, Pos: elt.Pos()})
	}
	return out, true
}

// covers reports whether the declared path decl covers p: p is decl or
// lies under it, a template segment ({arg} or {arg?}) matching any one
// segment.
func covers(decl, p string) bool {
	ds, ps := strings.Split(decl, "."), strings.Split(p, ".")
	if len(ps) < len(ds) {
		return false
	}
	for i, d := range ds {
		if strings.HasPrefix(d, "{") && strings.HasSuffix(d, "}") {
			continue
		}
		if d != ps[i] {
			return false
		}
	}
	return true
}

func coveredBy(decls []Decl, p string) bool {
	for _, d := range decls {
		if covers(d.Path, p) {
			return true
		}
	}
	return false
}

// The Ctx methods the rules look at.
const (
	mGet      = "Get"
	mRaw      = "Raw"
	mChildren = "Children"
	mTensor   = "Tensor"
	mSet      = "Set"
	mDelete   = "Delete"
	mAppend   = "Append"
	mEmit     = "Emit"
	mNew      = "NewTensor"
)

// isRead and isWrite classify the Ctx methods that take a path.
func isRead(m string) bool  { return m == mGet || m == mRaw || m == mChildren || m == mTensor }
func isWrite(m string) bool { return m == mSet || m == mDelete || m == mAppend || m == mNew }

// ctxMethod returns the name of the *worker.Ctx method call calls, or "".
func ctxMethod(info *types.Info, call *ast.CallExpr) string {
	fn := callee(info, call)
	if fn == nil {
		return ""
	}
	recv := fn.Signature().Recv()
	if recv == nil || !isCtx(recv.Type()) {
		return ""
	}
	return fn.Name()
}

// ctxCall is one call of a Ctx method that takes a path (or a topic).
type ctxCall struct {
	method string
	call   *ast.CallExpr
	path   string // the constant path, when known
	known  bool
}

// ctxCalls returns the Ctx calls in body, in source order.
func ctxCalls(info *types.Info, body *ast.BlockStmt) []ctxCall {
	var out []ctxCall
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		m := ctxMethod(info, call)
		if (isRead(m) || isWrite(m) || m == mEmit) && len(call.Args) > 0 {
			c := ctxCall{method: m, call: call}
			c.path, c.known = constString(info, call.Args[0])
			out = append(out, c)
		}
		return true
	})
	return out
}

// callee returns the function or method call calls statically, or nil
// (a builtin, a function value, a conversion).
func callee(info *types.Info, call *ast.CallExpr) *types.Func {
	fn, _ := typeutil.Callee(info, call).(*types.Func)
	return fn
}

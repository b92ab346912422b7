package lint

import (
	"go/ast"

	"golang.org/x/tools/go/analysis"

	"github.com/theus-run/theus/contract"
)

func runE06(pass *analysis.Pass, r *reporter) {
	info := pass.TypesInfo
	check := func(e ast.Expr, how string) {
		call, ok := ast.Unparen(e).(*ast.CallExpr)
		if !ok {
			return
		}
		switch m := ctxMethod(info, call); m {
		case mSet, mDelete, mAppend, mEmit:
			r.report(call.Pos(), "the error of ctx.%s is %s: return it, or the process goes on as if the write was made", m, how)
		}
	}
	for _, f := range found(pass).Funcs {
		ast.Inspect(f.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ExprStmt:
				check(n.X, "ignored")
			case *ast.DeferStmt:
				check(n.Call, "ignored (deferred)")
			case *ast.GoStmt:
				check(n.Call, "ignored (go statement)")
			case *ast.AssignStmt:
				if len(n.Lhs) == 1 && len(n.Rhs) == 1 {
					if id, ok := n.Lhs[0].(*ast.Ident); ok && id.Name == "_" {
						check(n.Rhs[0], "assigned to _")
					}
				}
			}
			return true
		})
	}
}

// processCalls calls fn with each process and each Ctx call its
// functions make.
func processCalls(pass *analysis.Pass, fn func(p *Process, c ctxCall)) {
	calls := map[*ast.BlockStmt][]ctxCall{}
	for _, p := range found(pass).Processes {
		for _, f := range p.Funcs {
			cs, ok := calls[f.Body]
			if !ok {
				cs = ctxCalls(pass.TypesInfo, f.Body)
				calls[f.Body] = cs
			}
			for _, c := range cs {
				fn(p, c)
			}
		}
	}
}

func runE07(pass *analysis.Pass, r *reporter) {
	processCalls(pass, func(p *Process, c ctxCall) {
		pure := p.Contract.EffectKnown && !p.Contract.Effect
		if c.method == mEmit {
			if pure {
				r.report(c.call.Pos(), "process %q is PURE and emits on the outbox, a side effect: declare Effect: true", p.Name)
			}
			return
		}
		if !isWrite(c.method) || !c.known {
			return
		}
		path, err := contract.Parse(c.path)
		if err != nil {
			return // POP-C01 reports it
		}
		root, inLog := path.LogRoot()
		switch {
		case path.InZone(contract.ZoneConst):
			r.report(c.call.Pos(), "ctx.%s writes %s, a CONST path: constants are never written by a process", c.method, path)
		case path.InZone(contract.ZoneMeta):
			r.report(c.call.Pos(), "ctx.%s writes %s, a META path: META belongs to the runtime", c.method, path)
		case c.method != mAppend && inLog:
			r.report(c.call.Pos(), "ctx.%s writes %s under the LOG %s: a LOG only grows, by ctx.Append at its root", c.method, path, root)
		case c.method == mAppend && (!inLog || root != path):
			r.report(c.call.Pos(), "ctx.Append to %s, which is not the root of a LOG (a log_* segment last)", path)
		case pure && path.InZone(contract.ZoneSignal):
			r.report(c.call.Pos(), "process %q is PURE and writes the signal %s, a side effect: declare Effect: true", p.Name, path)
		}
	})
}

func runC01(pass *analysis.Pass, r *reporter) {
	processCalls(pass, func(p *Process, c ctxCall) {
		if !c.known || c.method == mEmit {
			return
		}
		if _, err := contract.Parse(c.path); err != nil {
			r.report(c.call.Args[0].Pos(), "ctx.%s of an invalid path: %v", c.method, err)
			return
		}
		switch {
		case isRead(c.method) && p.Contract.InputsKnown && !coveredBy(p.Contract.Inputs, c.path):
			r.report(c.call.Args[0].Pos(), "ctx.%s reads %s, which the contract of process %q does not declare among its inputs", c.method, c.path, p.Name)
		case isWrite(c.method) && p.Contract.OutputsKnown && !coveredBy(p.Contract.Outputs, c.path):
			r.report(c.call.Args[0].Pos(), "ctx.%s writes %s, which the contract of process %q does not declare among its outputs", c.method, c.path, p.Name)
		}
	})
}

func runW01(pass *analysis.Pass, r *reporter) {
	reads := map[*Process][]string{}
	blind := map[*Process]bool{} // a read of a path built at run time
	processCalls(pass, func(p *Process, c ctxCall) {
		switch {
		case !isRead(c.method):
		case c.known:
			reads[p] = append(reads[p], c.path)
		default:
			blind[p] = true
		}
	})
	for _, p := range found(pass).Processes {
		if p.Opaque || blind[p] || !p.Contract.InputsKnown {
			continue
		}
		for _, in := range p.Contract.Inputs {
			read := false
			for _, path := range reads[p] {
				read = read || covers(in.Path, path)
			}
			if !read {
				r.report(in.Pos, "process %q declares the input %s but never reads it: every declared input is shipped, validated and locked on each call; drop it", p.Name, in.Path)
			}
		}
	}
}

// privateRead returns whether c reads a constant PRIVATE path.
func privateRead(c ctxCall) bool {
	if !isRead(c.method) || !c.known {
		return false
	}
	p, err := contract.Parse(c.path)
	return err == nil && p.InZone(contract.ZonePrivate)
}

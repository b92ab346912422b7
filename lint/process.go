package lint

import (
	"go/ast"
	"go/token"
	"go/types"
	"reflect"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/types/typeutil"
)

// WorkerPath is the import path of the SDK whose calls the analyzers
// recognize.
const WorkerPath = "github.com/theus-run/theus/worker"

// MaxDepth bounds how far calls are followed from a handler: a handler
// is depth 0, a function it calls depth 1, and so on.
const MaxDepth = 8

// Processes finds the processes a package registers and the functions
// each one runs. It reports nothing; its result is a *Found.
var Processes = &analysis.Analyzer{
	Name:       "popprocesses",
	Doc:        "find the processes registered with worker.Process and the same-package functions they reach",
	Run:        findProcesses,
	ResultType: reflect.TypeFor[*Found](),
}

// Found is what Processes finds in one package.
type Found struct {
	Processes []*Process
	// Funcs holds every function some process reaches, each once.
	Funcs []*Func
	decls map[*types.Func]*ast.FuncDecl
}

// Process is one worker.Process call.
type Process struct {
	Name     string // "" when the name is not a constant
	Call     *ast.CallExpr
	Contract Contract
	// Funcs holds the handler first, then the functions it reaches; it is
	// empty when the handler is not a function literal or a function of
	// the package.
	Funcs []*Func
	// Opaque is set when the Ctx may reach code that is not followed (a
	// function of another package, a function value, a call past
	// MaxDepth, a handler that is not found): reads may go unseen there.
	Opaque bool
}

// Contract is what a contract literal declares. A list is Known when the
// literal gives it entirely as constants (absent counts as empty).
type Contract struct {
	Inputs, Outputs           []Decl
	InputsKnown, OutputsKnown bool
	Effect, EffectKnown       bool
}

// Decl is one declared path, templates included, and where it is.
type Decl struct {
	Path string
	Pos  token.Pos
}

// Func is a function body a process runs.
type Func struct {
	Obj  *types.Func // nil for a function literal
	Type *ast.FuncType
	Body *ast.BlockStmt
}

func findProcesses(pass *analysis.Pass) (any, error) {
	f := &Found{decls: map[*types.Func]*ast.FuncDecl{}}
	if !importsWorker(pass.Pkg) {
		return f, nil
	}
	for _, file := range pass.Files {
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				if obj, ok := pass.TypesInfo.Defs[fd.Name].(*types.Func); ok {
					f.decls[obj] = fd
				}
			}
		}
	}
	seen := map[*ast.BlockStmt]bool{}
	for _, file := range pass.Files {
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isWorkerFunc(callee(pass.TypesInfo, call), "Process") || len(call.Args) != 3 {
				return true
			}
			p := &Process{Call: call, Contract: readContract(pass.TypesInfo, call.Args[1])}
			p.Name, _ = constString(pass.TypesInfo, call.Args[0])
			f.reach(pass, p, call.Args[2])
			for _, fn := range p.Funcs {
				if !seen[fn.Body] {
					seen[fn.Body] = true
					f.Funcs = append(f.Funcs, fn)
				}
			}
			f.Processes = append(f.Processes, p)
			return true
		})
	}
	return f, nil
}

func importsWorker(pkg *types.Package) bool {
	for _, imp := range pkg.Imports() {
		if imp.Path() == WorkerPath {
			return true
		}
	}
	return false
}

// isWorkerFunc reports whether fn is the package-level function name of
// the worker package.
func isWorkerFunc(fn *types.Func, name string) bool {
	if fn == nil || fn.Pkg() == nil || fn.Pkg().Path() != WorkerPath || fn.Name() != name {
		return false
	}
	return fn.Signature().Recv() == nil
}

// decl returns the declaration of a function of the package, or nil.
func (f *Found) decl(fn *types.Func) *ast.FuncDecl {
	if fn == nil {
		return nil
	}
	return f.decls[fn.Origin()]
}

// reach sets p.Funcs to the handler h and what it reaches, breadth first.
func (f *Found) reach(pass *analysis.Pass, p *Process, h ast.Expr) {
	type item struct {
		fn    *Func
		depth int
	}
	var queue []item
	switch h := ast.Unparen(h).(type) {
	case *ast.FuncLit:
		queue = append(queue, item{&Func{Type: h.Type, Body: h.Body}, 0})
	case *ast.Ident, *ast.SelectorExpr:
		obj, _ := pass.TypesInfo.Uses[identOf(h)].(*types.Func)
		if d := f.decl(obj); d != nil {
			queue = append(queue, item{&Func{Obj: obj, Type: d.Type, Body: d.Body}, 0})
		}
	}
	if len(queue) == 0 {
		p.Opaque = true
		return
	}
	visited := map[*types.Func]bool{}
	if obj := queue[0].fn.Obj; obj != nil {
		visited[obj] = true
	}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		p.Funcs = append(p.Funcs, it.fn)
		callees, escapes := f.scanCalls(pass.TypesInfo, it.fn.Body)
		if escapes {
			p.Opaque = true
		}
		for _, obj := range callees {
			if visited[obj] {
				continue
			}
			if it.depth+1 > MaxDepth {
				p.Opaque = true
				continue
			}
			visited[obj] = true
			d := f.decl(obj)
			queue = append(queue, item{&Func{Obj: obj.Origin(), Type: d.Type, Body: d.Body}, it.depth + 1})
		}
	}
}

// identOf returns the identifier that names e (x or pkg.x), or nil.
func identOf(e ast.Expr) *ast.Ident {
	switch e := e.(type) {
	case *ast.Ident:
		return e
	case *ast.SelectorExpr:
		return e.Sel
	}
	return nil
}

// scanCalls returns the functions of the package that body calls or
// refers to (a function value may be called), and whether a *Ctx is used
// other than as a method receiver or an argument to one of them.
func (f *Found) scanCalls(info *types.Info, body *ast.BlockStmt) (callees []*types.Func, escapes bool) {
	safe := map[*ast.Ident]bool{}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := ast.Unparen(n.X).(*ast.Ident); ok {
				safe[id] = true // ctx.Method or ctx.Field
			}
		case *ast.CallExpr:
			if f.decl(typeutil.StaticCallee(info, n)) != nil {
				for _, a := range n.Args {
					if id, ok := ast.Unparen(a).(*ast.Ident); ok {
						safe[id] = true
					}
				}
			}
		case *ast.Ident:
			if obj, ok := info.Uses[n].(*types.Func); ok && f.decl(obj) != nil {
				callees = append(callees, obj.Origin())
			}
		}
		return true
	})
	ast.Inspect(body, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && !safe[id] {
			if v, ok := info.Uses[id].(*types.Var); ok && isCtx(v.Type()) {
				escapes = true
			}
		}
		return true
	})
	return callees, escapes
}

// isCtx reports whether t is worker.Ctx or a pointer to it.
func isCtx(t types.Type) bool {
	return isWorkerType(t, "Ctx")
}

func isWorkerType(t types.Type, name string) bool {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := types.Unalias(t).(*types.Named)
	if !ok {
		return false
	}
	obj := n.Obj()
	return obj.Pkg() != nil && obj.Pkg().Path() == WorkerPath && obj.Name() == name
}

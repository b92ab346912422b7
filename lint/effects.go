package lint

import (
	"go/ast"
	"go/token"
	"go/types"
	"slices"

	"golang.org/x/tools/go/analysis"
)

// eachCall calls fn with every call in the functions processes run.
func eachCall(pass *analysis.Pass, fn func(call *ast.CallExpr, callee *types.Func)) {
	for _, f := range found(pass).Funcs {
		ast.Inspect(f.Body, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				fn(call, callee(pass.TypesInfo, call))
			}
			return true
		})
	}
}

// qualified returns "pkg.Name" for a function or method of a package.
func qualified(fn *types.Func) string {
	if recv := fn.Signature().Recv(); recv != nil {
		t := recv.Type()
		if p, ok := t.(*types.Pointer); ok {
			t = p.Elem()
		}
		if n, ok := types.Unalias(t).(*types.Named); ok {
			return fn.Pkg().Name() + "." + n.Obj().Name() + "." + fn.Name()
		}
	}
	return fn.Pkg().Name() + "." + fn.Name()
}

func runE01(pass *analysis.Pass, r *reporter) {
	for _, f := range found(pass).Funcs {
		ast.Inspect(f.Body, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok {
				return true
			}
			switch obj := pass.TypesInfo.Uses[id].(type) {
			case *types.Builtin:
				if obj.Name() == "print" || obj.Name() == "println" {
					r.report(id.Pos(), "builtin %s writes to the console outside the protocol: use ctx.Log()", obj.Name())
				}
			case *types.Func:
				if inPkg(obj, "fmt") && slices.Contains([]string{"Print", "Printf", "Println"}, obj.Name()) {
					r.report(id.Pos(), "fmt.%s writes to stdout, which belongs to the protocol: use ctx.Log()", obj.Name())
				}
			case *types.Var:
				if inPkg(obj, "os") && obj.Name() == "Stdout" {
					r.report(id.Pos(), "os.Stdout belongs to the protocol: use ctx.Log()")
				}
			}
			return true
		})
	}
}

func inPkg(obj types.Object, path string) bool {
	return obj.Pkg() != nil && obj.Pkg().Path() == path
}

// fsFuncs are the functions, by package, that reach the file system.
var fsFuncs = map[string][]string{
	"os": {"Chdir", "Chmod", "Chown", "Chtimes", "CopyFS", "Create", "CreateTemp", "DirFS", "Getwd",
		"Lchown", "Link", "Lstat", "Mkdir", "MkdirAll", "MkdirTemp", "Open", "OpenFile", "OpenInRoot",
		"OpenRoot", "ReadDir", "ReadFile", "Readlink", "Remove", "RemoveAll", "Rename", "Stat",
		"Symlink", "Truncate", "WriteFile"},
	"path/filepath": {"Abs", "EvalSymlinks", "Glob", "Walk", "WalkDir"},
	"syscall": {"Chmod", "Chown", "Creat", "Link", "Mkdir", "Open", "Openat", "Rename", "Rmdir",
		"Symlink", "Truncate", "Unlink", "Unlinkat"},
	"golang.org/x/sys/unix": {"Chmod", "Chown", "Creat", "Link", "Mkdir", "Mkdirat", "Open", "Openat",
		"Rename", "Renameat", "Rmdir", "Symlink", "Truncate", "Unlink", "Unlinkat"},
}

func runE02(pass *analysis.Pass, r *reporter) {
	eachCall(pass, func(call *ast.CallExpr, fn *types.Func) {
		if fn == nil || fn.Pkg() == nil || fn.Signature().Recv() != nil {
			return
		}
		path := fn.Pkg().Path()
		if path == "io/ioutil" || slices.Contains(fsFuncs[path], fn.Name()) {
			r.report(call.Pos(), "%s touches the file system: a process sees the world through its context only", qualified(fn))
		}
	})
}

// netPkgs are the packages whose calls use the network, with the
// functions and receiver types of each that do not (parsing, formatting).
var netPkgs = map[string]struct{ pureFuncs, pureTypes []string }{
	"net": {
		pureFuncs: []string{"CIDRMask", "IPv4", "IPv4Mask", "JoinHostPort", "ParseCIDR", "ParseIP", "ParseMAC", "SplitHostPort"},
		pureTypes: []string{"AddrError", "HardwareAddr", "IP", "IPMask", "IPNet", "ParseError"},
	},
	"net/http": {
		pureFuncs: []string{"CanonicalHeaderKey", "DetectContentType", "NewRequest", "NewRequestWithContext", "ParseHTTPVersion", "ParseTime", "StatusText"},
		pureTypes: []string{"Cookie", "Header"},
	},
	"net/http/httptest":              {},
	"net/rpc":                        {},
	"net/rpc/jsonrpc":                {},
	"net/smtp":                       {},
	"google.golang.org/grpc":         {},
	"github.com/redis/go-redis/v9":   {},
	"go.etcd.io/etcd/client/v3":      {},
	"github.com/hashicorp/go-plugin": {},
}

func runE03(pass *analysis.Pass, r *reporter) {
	eachCall(pass, func(call *ast.CallExpr, fn *types.Func) {
		if fn == nil || fn.Pkg() == nil {
			return
		}
		rule, ok := netPkgs[fn.Pkg().Path()]
		if !ok {
			return
		}
		if recv := fn.Signature().Recv(); recv != nil {
			t := recv.Type()
			if p, ok := t.(*types.Pointer); ok {
				t = p.Elem()
			}
			if n, ok := types.Unalias(t).(*types.Named); ok && slices.Contains(rule.pureTypes, n.Obj().Name()) {
				return
			}
		} else if slices.Contains(rule.pureFuncs, fn.Name()) {
			return
		}
		r.report(call.Pos(), "%s uses the network: a process sees the world through its context only", qualified(fn))
	})
}

func runE04(pass *analysis.Pass, r *reporter) {
	info := pass.TypesInfo
	check := func(e ast.Expr) {
		if v := globalRoot(info, e); v != nil {
			r.report(e.Pos(), "writes the package-level variable %s: state outside the context is shared by calls and lost on a retry; keep it in the context", v.Name())
		}
	}
	for _, f := range found(pass).Funcs {
		ast.Inspect(f.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.AssignStmt:
				if n.Tok != token.DEFINE {
					for _, lhs := range n.Lhs {
						check(lhs)
					}
				}
			case *ast.IncDecStmt:
				check(n.X)
			case *ast.CallExpr:
				if b, ok := info.Uses[identOf(ast.Unparen(n.Fun))].(*types.Builtin); ok && len(n.Args) > 0 {
					switch b.Name() {
					case "delete", "clear", "copy":
						check(n.Args[0])
					}
				}
			}
			return true
		})
	}
}

// globalRoot returns the package-level variable e writes into (x, x.f,
// x[i], *x, pkg.x, and compositions of them), or nil.
func globalRoot(info *types.Info, e ast.Expr) *types.Var {
	for {
		switch x := ast.Unparen(e).(type) {
		case *ast.Ident:
			v, ok := info.Uses[x].(*types.Var)
			if ok && v.Pkg() != nil && v.Parent() == v.Pkg().Scope() {
				return v
			}
			return nil
		case *ast.SelectorExpr:
			if _, isField := info.Selections[x]; isField {
				e = x.X
				continue
			}
			e = x.Sel // a qualified identifier, pkg.x
		case *ast.IndexExpr:
			e = x.X
		case *ast.StarExpr:
			e = x.X
		default:
			return nil
		}
	}
}

package flux

import (
	"fmt"

	"github.com/expr-lang/expr/ast"
)

// Top-level names a condition may use, as bits of Expr.uses.
var names = map[string]uint8{"domain": 1, "global": 2, "args": 4, "signal": 8, "run": 16}

// methods are the Python methods a condition may call (x.get(k), ...),
// each rewritten into a call of opFuncs["__m_"+name].
var methods = map[string]bool{
	"get": true, "keys": true, "values": true, "items": true,
	"lower": true, "upper": true, "strip": true, "startswith": true, "endswith": true,
}

// pyPatcher rewrites expr's AST so that conditions written in Python mean
// what they meant in Python (see the package doc), and refuses what the
// sandbox does not allow. It runs once per condition, at load.
type pyPatcher struct {
	uses uint8
	err  error // the first construct refused
}

func (p *pyPatcher) refuse(n ast.Node, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%s (column %d)", fmt.Sprintf(format, args...), n.Location().From+1)
	}
}

func call(fn string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: args}
}

var orderFuncs = map[string]string{"<": "__lt", "<=": "__le", ">": "__gt", ">=": "__ge", "==": "__eq", "!=": "__ne", "in": "__in", "+": "__add"}

// Visit is called by ast.Walk after a node's children, so every child is
// already rewritten.
func (p *pyPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "True", "False":
			ast.Patch(node, &ast.BoolNode{Value: n.Value == "True"})
		case "None":
			ast.Patch(node, &ast.NilNode{})
		case "$env":
			p.refuse(n, "$env is not allowed")
		default:
			p.uses |= names[n.Value]
		}
	case *ast.MemberNode:
		ast.Patch(node, call(fnGet, n.Node, n.Property))
	case *ast.ChainNode:
		ast.Patch(node, n.Node) // every access is already nil-safe
	case *ast.CallNode:
		p.visitCall(node, n)
	case *ast.BinaryNode:
		switch n.Operator {
		case "and", "&&":
			ast.Patch(node, &ast.BinaryNode{Operator: "&&", Left: call(fnTruth, n.Left), Right: call(fnTruth, n.Right)})
		case "or", "||":
			ast.Patch(node, &ast.BinaryNode{Operator: "||", Left: call(fnTruth, n.Left), Right: call(fnTruth, n.Right)})
		case "..":
			p.refuse(n, "the range operator .. is not allowed (use range(a, b))")
		default:
			if fn, ok := orderFuncs[n.Operator]; ok {
				ast.Patch(node, call(fn, n.Left, n.Right))
			}
		}
	case *ast.UnaryNode:
		if n.Operator == "not" || n.Operator == "!" {
			ast.Patch(node, &ast.UnaryNode{Operator: "!", Node: call(fnTruth, n.Node)})
		}
	case *ast.ConditionalNode:
		n.Cond = call(fnTruth, n.Cond)
	case *ast.BuiltinNode:
		p.refuse(n, "%s() is not available in a condition", n.Name)
	case *ast.PredicateNode, *ast.PointerNode:
		p.refuse(n, "predicates ({...}, #) are not available in a condition")
	case *ast.VariableDeclaratorNode:
		p.refuse(n, "let is not available in a condition")
	}
}

// visitCall turns obj.method(args) (by now __get(obj, "method")(args))
// into __m_method(obj, args).
func (p *pyPatcher) visitCall(node *ast.Node, n *ast.CallNode) {
	inner, ok := n.Callee.(*ast.CallNode)
	if !ok {
		return
	}
	if id, ok := inner.Callee.(*ast.IdentifierNode); !ok || id.Value != fnGet {
		p.refuse(n, "this value cannot be called")
		return
	}
	name, ok := inner.Arguments[1].(*ast.StringNode)
	if !ok {
		p.refuse(n, "this value cannot be called")
		return
	}
	if !methods[name.Value] {
		p.refuse(n, "method %s() is not available in a condition", name.Value)
		return
	}
	ast.Patch(node, call("__m_"+name.Value, append([]ast.Node{inner.Arguments[0]}, n.Arguments...)...))
}

package flux

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/theus-run/theus/contract"
)

// Limits on a file, refused at load.
const (
	MaxFileSize = 1 << 20 // bytes
	MaxDepth    = 64      // nested blocks (then, else, do, steps, on_fail, entry)
	MaxInstrs   = 100000  // instructions of one program
)

// compiler turns one steps block (a workflow's steps or a state's entry)
// into a flat Program. See the package doc for the shape of each step.
type compiler struct {
	l    *loader
	prog Program
	full bool // MaxInstrs reached and reported
}

func (c *compiler) pc() int { return len(c.prog.Instrs) }

// emit appends in and returns its pc. Past MaxInstrs it reports the
// problem once and drops the instruction: the file is refused anyway.
func (c *compiler) emit(in Instr) int {
	if len(c.prog.Instrs) >= MaxInstrs {
		if !c.full {
			c.full = true
			c.l.problem(in.Pos, "the program has more than %d instructions", MaxInstrs)
		}
		return len(c.prog.Instrs)
	}
	c.prog.Instrs = append(c.prog.Instrs, in)
	return len(c.prog.Instrs) - 1
}

// patch sets the Target of the instruction at pc (if it was emitted).
func (c *compiler) patch(pc, target int) {
	if pc < len(c.prog.Instrs) {
		c.prog.Instrs[pc].Target = target
	}
}

// blockKind says which block is compiled, for messages and the rule that
// `flux: continue` ends only an on_fail block.
type blockKind struct {
	key    string // "steps", "then", "else", "do", "on_fail", "entry"
	onFail bool
}

// block compiles the steps block under key (whose position is at) and
// reports whether it ended with `flux: continue` (only in an on_fail
// block). depth counts the enclosing blocks.
func (c *compiler) block(n ast.Node, at Pos, bk blockKind, depth int) (continued bool) {
	if depth > MaxDepth {
		c.l.problem(at, "%s: blocks are nested deeper than %d", bk.key, MaxDepth)
		return false
	}
	if isNull(n) {
		c.l.problem(at, "%s: is empty: a block needs at least one step", bk.key)
		return false
	}
	if n = c.l.value(n, at); n == nil {
		return false // refused and reported
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		c.l.problem(c.l.pos(n, at), "%s: must be a list of steps, not %s", bk.key, kindOf(n))
		return false
	}
	if len(seq.Values) == 0 {
		c.l.problem(at, "%s: is empty: a block needs at least one step", bk.key)
		return false
	}
	for i, step := range seq.Values {
		last := i == len(seq.Values)-1
		if c.step(step, c.l.pos(seq, at), depth) {
			if !bk.onFail || !last {
				c.l.problem(c.l.pos(stepHead(step), at), "flux: continue is allowed only as the last step of an on_fail block")
				continue
			}
			continued = true
		}
	}
	return continued
}

// stepHead returns the node whose position names a step: its first key
// for a mapping, the scalar itself otherwise.
func stepHead(n ast.Node) ast.Node {
	switch x := n.(type) {
	case *ast.MappingNode:
		if len(x.Values) > 0 {
			return x.Values[0].Key
		}
	case *ast.MappingValueNode:
		return x.Key
	}
	return n
}

// step compiles one step. It reports whether the step is `flux: continue`,
// which emits nothing itself: the enclosing on_fail block handles it.
func (c *compiler) step(n ast.Node, at Pos, depth int) (isContinue bool) {
	n = c.l.value(n, at)
	if n == nil {
		return false
	}
	p := c.l.pos(stepHead(n), at)
	if name, ok := stringValue(n); ok {
		c.process(name, p, nil, nil, depth)
		return false
	}
	if !isMapping(n) {
		c.l.problem(p, "a step must be a process name or a mapping, not %s", kindOf(n))
		return false
	}
	es, ok := c.l.mapping(n, p, "a step")
	if !ok {
		return false
	}
	var hasProcess, hasFlux bool
	for _, e := range es {
		hasProcess = hasProcess || e.key == "process"
		hasFlux = hasFlux || e.key == "flux"
	}
	switch {
	case hasProcess && hasFlux:
		c.l.problem(p, "a step has either process: or flux:, not both")
	case hasProcess:
		keys := c.l.checkKeys(es, "a process step", "process", "args", "on_fail")
		pe := keys["process"]
		name, ok := stringValue(c.l.value(pe.value, pe.keyPos))
		if !ok {
			c.l.problem(c.l.pos(pe.value, pe.keyPos), "process: must be a process name")
			return false
		}
		var onFail *entry
		if e, ok := keys["on_fail"]; ok {
			onFail = &e
		}
		c.process(name, p, keys["args"].value, onFail, depth)
	case hasFlux:
		return c.flux(es, p, depth)
	default:
		c.l.problem(p, "a step needs process: or flux: (or is a process name)")
	}
	return false
}

// process compiles a process step:
//
//	p: Process(OnFail=h); Jump(after); h: block...; Jump(after) | Fail(Target=p); after:
//
// or a lone Process(OnFail=-1) without on_fail.
func (c *compiler) process(name string, p Pos, args ast.Node, onFail *entry, depth int) {
	switch {
	case strings.TrimSpace(name) == "":
		c.l.problem(p, "a process name is empty")
	case c.l.known != nil && !c.l.known(name):
		c.l.problem(p, "unknown process %q", name)
	}
	in := Instr{Op: OpProcess, Pos: p, Kind: "process", Process: name, OnFail: -1}
	if !isNull(args) {
		in.Args = c.args(args, p)
	}
	at := c.emit(in)
	if onFail == nil {
		return
	}
	jump := c.emit(Instr{Op: OpJump, Pos: onFail.keyPos, Kind: "jump"})
	if at < len(c.prog.Instrs) {
		c.prog.Instrs[at].OnFail = c.pc()
	}
	if c.block(onFail.value, onFail.keyPos, blockKind{key: "on_fail", onFail: true}, depth+1) {
		end := c.emit(Instr{Op: OpJump, Pos: onFail.keyPos, Kind: "jump"})
		c.patch(end, c.pc())
	} else {
		c.emit(Instr{Op: OpFail, Pos: onFail.keyPos, Kind: "fail", Target: at})
	}
	c.patch(jump, c.pc())
}

// args compiles an args: mapping: literals become JSON, a string of the
// form ${ EXPR } an expression.
func (c *compiler) args(n ast.Node, at Pos) []Arg {
	es, ok := c.l.mapping(n, at, "args:")
	if !ok {
		return nil
	}
	out := make([]Arg, 0, len(es))
	for _, e := range es {
		v := c.l.value(e.value, e.keyPos)
		if v == nil && !isNull(e.value) {
			continue // refused and reported
		}
		if s, ok := stringValue(v); ok {
			if src, ok := exprForm(s); ok {
				x, err := compileExpr(src, c.l.pos(v, e.keyPos))
				if err != nil {
					c.l.problem(c.l.pos(v, e.keyPos), "args.%s: %v", e.key, err)
					continue
				}
				out = append(out, Arg{Key: e.key, Expr: x})
				continue
			}
		}
		if b, ok := c.l.toJSON(v, e.keyPos, 0); ok {
			out = append(out, Arg{Key: e.key, JSON: b})
		}
	}
	return out
}

// exprForm returns EXPR when s is exactly "${ EXPR }".
func exprForm(s string) (string, bool) {
	inner, ok := strings.CutPrefix(s, "${")
	if !ok {
		return "", false
	}
	inner, ok = strings.CutSuffix(inner, "}")
	if !ok {
		return "", false
	}
	return strings.TrimSpace(inner), true
}

var fluxKeys = map[string][]string{
	"if":       {"flux", "condition", "then", "else"},
	"while":    {"flux", "condition", "do"},
	"run":      {"flux", "steps"},
	"wait":     {"flux", "signal", "timeout"},
	"continue": {"flux"},
}

// flux compiles a `flux:` step.
func (c *compiler) flux(es []entry, p Pos, depth int) (isContinue bool) {
	var kindEntry entry
	for _, e := range es {
		if e.key == "flux" {
			kindEntry = e
		}
	}
	kv := c.l.value(kindEntry.value, kindEntry.keyPos)
	kind, ok := stringValue(kv)
	if _, known := fluxKeys[kind]; !ok || !known {
		text, _ := scalarText(kv)
		c.l.problem(c.l.pos(kv, kindEntry.keyPos), "unknown flux kind %q (expected if, while, run, wait or continue)", text)
		return false
	}
	keys := c.l.checkKeys(es, "a flux: "+kind+" step", fluxKeys[kind]...)
	need := func(key string) (entry, bool) {
		e, ok := keys[key]
		if !ok {
			c.l.problem(p, "flux: %s needs %s:", kind, key)
		}
		return e, ok
	}
	switch kind {
	case "continue":
		return true
	case "run":
		c.emit(Instr{Op: OpEnter, Pos: p, Kind: "run"})
		if e, ok := need("steps"); ok {
			c.block(e.value, e.keyPos, blockKind{key: "steps"}, depth+1)
		}
	case "wait":
		c.wait(keys, p, need)
	case "if":
		cond := c.cond(need("condition"))
		br := c.emit(Instr{Op: OpBranch, Pos: p, Kind: "if", Cond: cond})
		if e, ok := need("then"); ok {
			c.block(e.value, e.keyPos, blockKind{key: "then"}, depth+1)
		}
		if e, ok := keys["else"]; ok {
			jump := c.emit(Instr{Op: OpJump, Pos: e.keyPos, Kind: "jump"})
			c.patch(br, c.pc())
			c.block(e.value, e.keyPos, blockKind{key: "else"}, depth+1)
			c.patch(jump, c.pc())
		} else {
			c.patch(br, c.pc())
		}
	case "while":
		cond := c.cond(need("condition"))
		top := c.emit(Instr{Op: OpBranch, Pos: p, Kind: "while", Cond: cond})
		if e, ok := need("do"); ok {
			c.block(e.value, e.keyPos, blockKind{key: "do"}, depth+1)
		}
		c.emit(Instr{Op: OpJump, Pos: p, Kind: "jump", Target: top})
		c.patch(top, c.pc())
	}
	return false
}

// cond compiles a condition: value.
func (c *compiler) cond(e entry, ok bool) *Expr {
	if !ok {
		return nil
	}
	v := c.l.value(e.value, e.keyPos)
	src, isScalar := scalarText(v)
	if !isScalar || isNull(v) {
		c.l.problem(c.l.pos(v, e.keyPos), "condition: must be an expression, not %s", kindOf(v))
		return nil
	}
	x, err := compileExpr(src, c.l.pos(v, e.keyPos))
	if err != nil {
		c.l.problem(c.l.pos(v, e.keyPos), "condition: %v", err)
		return nil
	}
	return x
}

// wait compiles `flux: wait`.
func (c *compiler) wait(keys map[string]entry, p Pos, need func(string) (entry, bool)) {
	in := Instr{Op: OpWait, Pos: p, Kind: "wait"}
	if e, ok := need("signal"); ok {
		v := c.l.value(e.value, e.keyPos)
		vp := c.l.pos(v, e.keyPos)
		s, isStr := stringValue(v)
		if !isStr {
			c.l.problem(vp, "signal: must be a path, not %s", kindOf(v))
		} else if path, err := contract.Parse(s); err != nil {
			c.l.problem(vp, "signal: %v", err)
		} else if z := path.Zone(); z != contract.ZoneSignal && z != contract.ZoneData {
			c.l.problem(vp, "signal: %q is in the %s zone: a signal path has a sig_* or cmd_* segment, or is above one", s, z)
		} else {
			in.Signal = s
		}
	}
	if e, ok := keys["timeout"]; ok {
		in.Timeout = c.timeout(e)
	}
	c.emit(in)
}

// number returns the value of a YAML number.
func number(n ast.Node) (float64, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		switch v := x.Value.(type) {
		case int64:
			return float64(v), true
		case uint64:
			return float64(v), true
		}
	case *ast.FloatNode:
		return x.Value, true
	}
	return 0, false
}

// maxTimeoutSeconds keeps a timeout within time.Duration.
const maxTimeoutSeconds = float64(math.MaxInt64 / int64(time.Second))

// timeout reads a timeout: a Go duration string or a number of seconds,
// greater than zero.
func (c *compiler) timeout(e entry) time.Duration {
	v := c.l.value(e.value, e.keyPos)
	vp := c.l.pos(v, e.keyPos)
	var d time.Duration
	switch x := v.(type) {
	case *ast.StringNode:
		var err error
		if secs, perr := strconv.ParseFloat(x.Value, 64); perr == nil && secs <= maxTimeoutSeconds {
			d = time.Duration(secs * float64(time.Second)) // "30": a number of seconds
		} else if d, err = time.ParseDuration(x.Value); err != nil {
			c.l.problem(vp, "timeout: %q is not a duration (write 30s, 5m, 1h30m or a number of seconds)", x.Value)
			return 0
		}
	case *ast.IntegerNode, *ast.FloatNode:
		secs, ok := number(x)
		if !ok || secs > maxTimeoutSeconds {
			text, _ := scalarText(x)
			c.l.problem(vp, "timeout: %s is not a number of seconds this runtime can wait", text)
			return 0
		}
		d = time.Duration(secs * float64(time.Second))
	default:
		c.l.problem(vp, "timeout: must be a duration like 30s or a number of seconds, not %s", kindOf(v))
		return 0
	}
	if d <= 0 {
		c.l.problem(vp, "timeout: must be greater than zero (leave it out to wait without a timeout)")
		return 0
	}
	return d
}

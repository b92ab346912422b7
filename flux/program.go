package flux

import (
	"bytes"
	"encoding/json"
	"time"
)

// Op is what an instruction does.
type Op uint8

// Instructions of a compiled program. The supervisor executes them; see
// the package doc for the exact shape each step compiles to.
const (
	OpProcess Op = iota + 1 // run Process with Args; on failure go to OnFail when >= 0, else the run fails. Counts one op.
	OpBranch                // evaluate Cond; when false, jump to Target. Counts one op (so each while iteration counts).
	OpJump                  // jump to Target. Counts nothing.
	OpWait                  // park until a signal at or under Signal arrives; Timeout 0 = no timeout. Counts one op.
	OpFail                  // end of an on_fail block without `flux: continue`: the run fails with the error of the process step at Target
	OpEnter                 // start of a `flux: run` block: does nothing but count one op
)

var opNames = [...]string{"", "process", "branch", "jump", "wait", "fail", "enter"}

func (o Op) String() string {
	if int(o) < len(opNames) && o != 0 {
		return opNames[o]
	}
	return "op?"
}

// Arg is one argument of a process step: a literal (JSON) or an
// expression evaluated when the step runs. Exactly one of JSON and Expr is
// set.
type Arg struct {
	Key  string
	JSON []byte
	Expr *Expr
}

// Instr is one instruction of a Program.
type Instr struct {
	Op      Op
	Pos     Pos
	Kind    string // "process", "if", "while", "run", "wait", "jump", "fail": for messages and history
	Process string
	Args    []Arg // in file order
	Cond    *Expr
	Target  int
	OnFail  int    // OpProcess: pc of its on_fail block, -1 for none
	Signal  string // OpWait: a contract path in the SIGNAL zone or above one (e.g. "domain" or "domain.cmd_go")
	Timeout time.Duration
}

// Program is a compiled steps block. The run starts at pc 0 and ends when
// pc == len(Instrs).
type Program struct {
	Instrs []Instr
}

// EvalArgs evaluates in's Args against env and returns them as one JSON
// object, keys in file order ("{}" for none). Env.Domain and Env.Global are
// called at most once for all the arguments together. A failure is an
// *EvalError naming the argument's position.
func (in *Instr) EvalArgs(env *Env) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	st := newEvalState(env)
	for i, a := range in.Args {
		if i > 0 {
			buf.WriteByte(',')
		}
		key, _ := json.Marshal(a.Key) // a string always marshals
		buf.Write(key)
		buf.WriteByte(':')
		if a.Expr == nil {
			buf.Write(a.JSON)
			continue
		}
		v, err := a.Expr.eval(st)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, a.Expr.evalError(err)
		}
		buf.Write(b)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

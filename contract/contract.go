package contract

import (
	"fmt"
)

// Semantic says whether a process may observe the outside world.
type Semantic uint8

// Semantics. The zero value is Pure, the stricter one.
const (
	Pure   Semantic = iota // deterministic in its inputs; may not read SIGNAL paths
	Effect                 // may read signals and act on the world
)

func (s Semantic) String() string {
	if s == Effect {
		return "EFFECT"
	}
	return "PURE"
}

// Op is the kind of a write in a delta.
type Op uint8

// Write kinds.
const (
	OpSet    Op = iota + 1 // replace the value at a path
	OpDelete               // remove the value at a path (a tombstone)
	OpAppend               // add an entry under a LOG path
)

func (o Op) String() string {
	switch o {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpAppend:
		return "append"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Contract declares what a process reads and writes. Build one with New; the
// zero Contract declares nothing (a process that neither reads nor writes).
type Contract struct {
	Name     string
	Inputs   []Path
	Outputs  []Path
	Semantic Semantic
}

// New validates a contract. Inputs may not be PRIVATE, outputs may not be
// CONST, and a PURE contract may not declare SIGNAL inputs: such a contract
// could never run, so it is refused when declared rather than when used.
func New(name string, inputs, outputs []Path, sem Semantic) (Contract, error) {
	c := Contract{Name: name, Inputs: inputs, Outputs: outputs, Semantic: sem}
	if sem != Pure && sem != Effect {
		return Contract{}, fmt.Errorf("%w: %s: unknown semantic %d", ErrInvalidContract, name, sem)
	}
	for _, p := range inputs {
		if err := checkDeclared(p); err != nil {
			return Contract{}, fmt.Errorf("%w: %s: input: %w", ErrInvalidContract, name, err)
		}
		if p.InZone(ZonePrivate) {
			return Contract{}, c.violation(p, ErrPrivateRead)
		}
		if sem == Pure && p.InZone(ZoneSignal) {
			return Contract{}, c.violation(p, ErrSignalInPure)
		}
	}
	for _, p := range outputs {
		if err := checkDeclared(p); err != nil {
			return Contract{}, fmt.Errorf("%w: %s: output: %w", ErrInvalidContract, name, err)
		}
		if p.InZone(ZoneConst) {
			return Contract{}, c.violation(p, ErrConstWrite)
		}
		if p.InZone(ZonePrivate) {
			return Contract{}, c.violation(p, ErrPrivateWrite)
		}
	}
	return c, nil
}

// checkDeclared re-validates a path that may have been built by conversion
// instead of Parse.
func checkDeclared(p Path) error {
	return validate(string(p))
}

func (c Contract) violation(p Path, rule error) *Violation {
	return &Violation{Process: c.Name, Path: p, Rule: rule}
}

func covered(decl []Path, p Path) bool {
	for _, d := range decl {
		if Covers(string(d), string(p)) {
			return true
		}
	}
	return false
}

// CheckRead returns nil if the process may read p (and its subtree), or a
// *Violation naming p and the rule.
func (c Contract) CheckRead(p Path) error {
	if err := checkDeclared(p); err != nil {
		return err
	}
	if p.InZone(ZonePrivate) {
		return c.violation(p, ErrPrivateRead)
	}
	if c.Semantic == Pure && p.InZone(ZoneSignal) {
		return c.violation(p, ErrSignalInPure)
	}
	if !covered(c.Inputs, p) {
		return c.violation(p, ErrUndeclaredRead)
	}
	return nil
}

// CheckWrite returns nil if the process may apply op to p, or a *Violation
// naming p and the rule. Appends are allowed only at the root of a LOG
// (the path ending in its log_* segment); every other write inside a LOG is
// refused, and an append outside a LOG is refused too.
func (c Contract) CheckWrite(p Path, op Op) error {
	if err := checkDeclared(p); err != nil {
		return err
	}
	if op != OpSet && op != OpDelete && op != OpAppend {
		return fmt.Errorf("%w: %s: unknown write kind %v", ErrInvalidContract, p, op)
	}
	if p.InZone(ZoneConst) {
		return c.violation(p, ErrConstWrite)
	}
	if p.InZone(ZonePrivate) {
		return c.violation(p, ErrPrivateWrite)
	}
	root, inLog := p.LogRoot()
	switch {
	case op != OpAppend && inLog:
		return c.violation(p, ErrLogNotAppend)
	case op == OpAppend && (!inLog || root != p):
		return c.violation(p, ErrAppendNotLog)
	}
	if !covered(c.Outputs, p) {
		return c.violation(p, ErrUndeclaredWrite)
	}
	return nil
}

// Keys returns the contract's key set, the union of inputs and outputs
// with every path covered by another dropped: what a VIP ticket for this
// process must cover.
func (c Contract) Keys() []Path {
	all := make([]Path, 0, len(c.Inputs)+len(c.Outputs))
	all = append(all, c.Inputs...)
	all = append(all, c.Outputs...)
	out := all[:0:0]
	for i, p := range all {
		redundant := false
		for j, q := range all {
			// q covers p strictly, or equals it and comes first.
			if j != i && q.Covers(p) && (q != p || j < i) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, p)
		}
	}
	return out
}

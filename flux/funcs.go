package flux

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// pyFunc is a function callable from a condition.
type pyFunc func(args ...any) (any, error)

// funcs are the Python builtins a condition may call, by name. They are
// the only functions in a condition's sandbox: expr's own builtins are all
// disabled (see compileExpr).
var funcs = map[string]pyFunc{
	"len":    fnLen,
	"int":    fnInt,
	"float":  fnFloat,
	"str":    fnStr,
	"bool":   fnBool,
	"abs":    fnAbs,
	"min":    func(a ...any) (any, error) { return fnExtreme("min", -1, a) },
	"max":    func(a ...any) (any, error) { return fnExtreme("max", 1, a) },
	"sum":    fnSum,
	"round":  fnRound,
	"any":    fnAny,
	"all":    fnAll,
	"sorted": fnSorted,
	"range":  fnRange,
}

func nargs(name string, a []any, lo, hi int) error {
	if len(a) < lo || len(a) > hi {
		if lo == hi {
			return fmt.Errorf("%s() takes %d arguments (%d given)", name, lo, len(a))
		}
		return fmt.Errorf("%s() takes %d to %d arguments (%d given)", name, lo, hi, len(a))
	}
	return nil
}

func fnLen(a ...any) (any, error) {
	if err := nargs("len", a, 1, 1); err != nil {
		return nil, err
	}
	return pyLen(a[0])
}

func fnInt(a ...any) (any, error) {
	if err := nargs("int", a, 1, 1); err != nil {
		return nil, err
	}
	switch x := a[0].(type) {
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return nil, fmt.Errorf("invalid literal for int(): %q", x)
		}
		return i, nil
	}
	if i, ok := toInt(a[0]); ok {
		return i, nil
	}
	if f, ok := toFloat(a[0]); ok {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1<<63 {
			return nil, fmt.Errorf("cannot convert float %s to integer", formatFloat(f))
		}
		return int(f), nil // truncates toward zero, as Python does
	}
	return nil, fmt.Errorf("int() argument must be a string or a number, not %s", pyType(a[0]))
}

func fnFloat(a ...any) (any, error) {
	if err := nargs("float", a, 1, 1); err != nil {
		return nil, err
	}
	switch x := a[0].(type) {
	case bool:
		if x {
			return 1.0, nil
		}
		return 0.0, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return nil, fmt.Errorf("could not convert string to float: %q", x)
		}
		return f, nil
	}
	if f, ok := toFloat(a[0]); ok {
		return f, nil
	}
	return nil, fmt.Errorf("float() argument must be a string or a number, not %s", pyType(a[0]))
}

func fnStr(a ...any) (any, error) {
	if err := nargs("str", a, 1, 1); err != nil {
		return nil, err
	}
	s := pyStr(a[0])
	if len(s) > maxBuiltLen {
		return nil, fmt.Errorf("str(): %w (over %d bytes)", errTooLarge, maxBuiltLen)
	}
	return s, nil
}

func fnBool(a ...any) (any, error) {
	if err := nargs("bool", a, 1, 1); err != nil {
		return nil, err
	}
	return truth(a[0]), nil
}

func fnAbs(a ...any) (any, error) {
	if err := nargs("abs", a, 1, 1); err != nil {
		return nil, err
	}
	if i, ok := toInt(a[0]); ok {
		if i < 0 {
			return -i, nil
		}
		return i, nil
	}
	if f, ok := toFloat(a[0]); ok {
		return math.Abs(f), nil
	}
	return nil, fmt.Errorf("bad operand type for abs(): %s", pyType(a[0]))
}

// items returns the items of an iterable argument (a list, or a dict's
// keys), as Python iterates them.
func items(name string, v any) ([]any, error) {
	if l, ok := asList(v); ok {
		return l, nil
	}
	if m, ok := asMap(v); ok {
		keys := sortedKeys(m)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = k
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s(): %s object is not iterable", name, pyType(v))
}

func fnExtreme(name string, sign int, a []any) (any, error) {
	if len(a) == 0 {
		return nil, fmt.Errorf("%s expected at least 1 argument, got 0", name)
	}
	vals := a
	if len(a) == 1 {
		var err error
		if vals, err = items(name, a[0]); err != nil {
			return nil, err
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("%s() arg is an empty sequence", name)
		}
	}
	best := vals[0]
	for _, v := range vals[1:] {
		c, err := compare(v, best)
		if err != nil {
			return nil, fmt.Errorf("%s(): %w", name, err)
		}
		if c*sign > 0 {
			best = v
		}
	}
	return best, nil
}

func fnSum(a ...any) (any, error) {
	if err := nargs("sum", a, 1, 2); err != nil {
		return nil, err
	}
	vals, err := items("sum", a[0])
	if err != nil {
		return nil, err
	}
	var acc any = 0
	if len(a) == 2 {
		acc = a[1]
	}
	for _, v := range vals {
		if acc, err = addNumbers(acc, v); err != nil {
			return nil, fmt.Errorf("sum(): %w", err)
		}
	}
	return acc, nil
}

// addNumbers adds two numbers, keeping an int when both are ints.
func addNumbers(x, y any) (any, error) {
	if i, ok := toInt(x); ok {
		if j, ok := toInt(y); ok {
			return i + j, nil
		}
	}
	fx, okx := toFloat(x)
	fy, oky := toFloat(y)
	if !okx || !oky {
		return nil, fmt.Errorf("unsupported operand types for +: %s and %s", pyType(x), pyType(y))
	}
	return fx + fy, nil
}

func fnRound(a ...any) (any, error) {
	if err := nargs("round", a, 1, 2); err != nil {
		return nil, err
	}
	f, ok := toFloat(a[0])
	if !ok {
		return nil, fmt.Errorf("round(): %s is not a number", pyType(a[0]))
	}
	if len(a) == 1 {
		return fnInt(math.RoundToEven(f))
	}
	n, ok := toIndex(a[1])
	if !ok || n < -300 || n > 300 {
		return nil, fmt.Errorf("round(): ndigits must be an integer in [-300, 300]")
	}
	p := math.Pow10(n)
	return math.RoundToEven(f*p) / p, nil
}

func fnAny(a ...any) (any, error) {
	if err := nargs("any", a, 1, 1); err != nil {
		return nil, err
	}
	vals, err := items("any", a[0])
	if err != nil {
		return nil, err
	}
	return slices.ContainsFunc(vals, truth), nil
}

func fnAll(a ...any) (any, error) {
	if err := nargs("all", a, 1, 1); err != nil {
		return nil, err
	}
	vals, err := items("all", a[0])
	if err != nil {
		return nil, err
	}
	return !slices.ContainsFunc(vals, func(v any) bool { return !truth(v) }), nil
}

func fnSorted(a ...any) (any, error) {
	if err := nargs("sorted", a, 1, 1); err != nil {
		return nil, err
	}
	vals, err := items("sorted", a[0])
	if err != nil {
		return nil, err
	}
	out := slices.Clone(vals)
	var cmpErr error
	slices.SortStableFunc(out, func(x, y any) int {
		c, err := compare(x, y)
		if err != nil && cmpErr == nil {
			cmpErr = err
		}
		return c
	})
	if cmpErr != nil {
		return nil, fmt.Errorf("sorted(): %w", cmpErr)
	}
	return out, nil
}

// fnRange is Python's range, built as a list of at most maxBuiltItems.
func fnRange(a ...any) (any, error) {
	if err := nargs("range", a, 1, 3); err != nil {
		return nil, err
	}
	ns := make([]int, len(a))
	for i, v := range a {
		n, ok := toIndex(v)
		if !ok {
			return nil, fmt.Errorf("range(): %s is not an integer", pyType(v))
		}
		ns[i] = n
	}
	start, stop, step := 0, 0, 1
	switch len(ns) {
	case 1:
		stop = ns[0]
	case 2:
		start, stop = ns[0], ns[1]
	case 3:
		start, stop, step = ns[0], ns[1], ns[2]
	}
	if step == 0 {
		return nil, fmt.Errorf("range() arg 3 must not be zero")
	}
	var diff, by uint64 // the distance to cover and the stride, both > 0
	switch {
	case step > 0 && stop > start:
		diff, by = uint64(stop)-uint64(start), uint64(step)
	case step < 0 && start > stop:
		diff, by = uint64(start)-uint64(stop), uint64(-step)
	}
	n := uint64(0)
	if by > 0 {
		n = diff / by
		if diff%by != 0 {
			n++
		}
	}
	if n > maxBuiltItems {
		return nil, fmt.Errorf("range(): %w (over %d items)", errTooLarge, maxBuiltItems)
	}
	out := make([]any, n)
	for i := range out {
		out[i] = start + i*step
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

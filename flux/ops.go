package flux

import (
	"fmt"
	"strings"
)

// The operators and member accesses of a condition are rewritten (see
// patch.go) into calls of these functions, which give them Python's
// meaning and the missing-key rule of the package doc.
var opFuncs = map[string]pyFunc{
	fnGet:      opGet,
	fnTruth:    func(a ...any) (any, error) { return truth(a[0]), nil },
	"__lt":     orderOp(func(c int) bool { return c < 0 }),
	"__le":     orderOp(func(c int) bool { return c <= 0 }),
	"__gt":     orderOp(func(c int) bool { return c > 0 }),
	"__ge":     orderOp(func(c int) bool { return c >= 0 }),
	"__eq":     func(a ...any) (any, error) { return equal(a[0], a[1]), nil },
	"__ne":     func(a ...any) (any, error) { return !equal(a[0], a[1]), nil },
	"__in":     opIn,
	"__add":    opAdd,
	"__m_get":  methodGet,
	"__m_keys": dictMethod("keys", func(m map[string]any, k string) any { return k }),
	"__m_values": dictMethod("values", func(m map[string]any, k string) any {
		return m[k]
	}),
	"__m_items": dictMethod("items", func(m map[string]any, k string) any {
		return []any{k, m[k]}
	}),
	"__m_lower":      strMethod("lower", 0, func(s string, _ []string) any { return strings.ToLower(s) }),
	"__m_upper":      strMethod("upper", 0, func(s string, _ []string) any { return strings.ToUpper(s) }),
	"__m_strip":      strMethod("strip", 0, func(s string, _ []string) any { return strings.TrimSpace(s) }),
	"__m_startswith": strMethod("startswith", 1, func(s string, a []string) any { return strings.HasPrefix(s, a[0]) }),
	"__m_endswith":   strMethod("endswith", 1, func(s string, a []string) any { return strings.HasSuffix(s, a[0]) }),
}

// Names of the rewrite targets used by the patcher.
const (
	fnGet   = "__get"
	fnTruth = "__truth"
)

// opGet is x[k] and x.k: None and a missing key give None; a list index
// out of range and an index into something that has none are errors.
func opGet(a ...any) (any, error) {
	obj, key := a[0], a[1]
	if obj == nil {
		return nil, nil
	}
	if m, ok := obj.(map[string]any); ok {
		k, _ := key.(string)
		return m[k], nil // a non-string key is missing: JSON keys are strings
	}
	if s, ok := obj.(string); ok {
		i, ok := toIndex(key)
		if !ok {
			return nil, fmt.Errorf("string indices must be integers, not %s", pyType(key))
		}
		r := []rune(s)
		if i < 0 {
			i += len(r)
		}
		if i < 0 || i >= len(r) {
			return nil, fmt.Errorf("string index out of range")
		}
		return string(r[i]), nil
	}
	if l, ok := asList(obj); ok {
		i, ok := toIndex(key)
		if !ok {
			return nil, fmt.Errorf("list indices must be integers, not %s", pyType(key))
		}
		if i < 0 {
			i += len(l)
		}
		if i < 0 || i >= len(l) {
			return nil, fmt.Errorf("list index %s out of range", pyStr(key))
		}
		return l[i], nil
	}
	if m, ok := asMap(obj); ok {
		k, _ := key.(string)
		return m[k], nil
	}
	return nil, fmt.Errorf("%s object is not subscriptable", pyType(obj))
}

// orderOp is <, <=, >, >=: false when either side is None.
func orderOp(ok func(int) bool) pyFunc {
	return func(a ...any) (any, error) {
		if a[0] == nil || a[1] == nil {
			return false, nil
		}
		c, err := compare(a[0], a[1])
		if err != nil {
			return nil, err
		}
		return ok(c), nil
	}
}

// opIn is `x in y`: false when y is None.
func opIn(a ...any) (any, error) {
	x, y := a[0], a[1]
	switch c := y.(type) {
	case nil:
		return false, nil
	case string:
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("'in <string>' requires string as left operand, not %s", pyType(x))
		}
		return strings.Contains(c, s), nil
	case map[string]any:
		k, ok := x.(string)
		if !ok {
			return false, nil
		}
		_, found := c[k]
		return found, nil
	}
	if l, ok := asList(y); ok {
		for _, v := range l {
			if equal(x, v) {
				return true, nil
			}
		}
		return false, nil
	}
	if m, ok := asMap(y); ok {
		k, _ := x.(string)
		_, found := m[k]
		return found, nil
	}
	return nil, fmt.Errorf("argument of type %s is not iterable", pyType(y))
}

// opAdd is +: numbers, or the concatenation of two strings or two lists,
// bounded by maxBuiltLen and maxBuiltItems.
func opAdd(a ...any) (any, error) {
	x, y := a[0], a[1]
	if sx, ok := x.(string); ok {
		sy, ok := y.(string)
		if !ok {
			return nil, fmt.Errorf("can only concatenate str (not %s) to str", pyType(y))
		}
		if len(sx)+len(sy) > maxBuiltLen {
			return nil, fmt.Errorf("+: %w (over %d bytes)", errTooLarge, maxBuiltLen)
		}
		return sx + sy, nil
	}
	if lx, ok := asList(x); ok {
		ly, ok := asList(y)
		if !ok {
			return nil, fmt.Errorf("can only concatenate list (not %s) to list", pyType(y))
		}
		if len(lx)+len(ly) > maxBuiltItems {
			return nil, fmt.Errorf("+: %w (over %d items)", errTooLarge, maxBuiltItems)
		}
		return append(append(make([]any, 0, len(lx)+len(ly)), lx...), ly...), nil
	}
	return addNumbers(x, y)
}

// methodGet is d.get(k[, default]). On None it gives the default, like a
// missing key.
func methodGet(a ...any) (any, error) {
	if len(a) < 2 || len(a) > 3 {
		return nil, fmt.Errorf("get() takes 1 or 2 arguments (%d given)", len(a)-1)
	}
	var def any
	if len(a) == 3 {
		def = a[2]
	}
	if a[0] == nil {
		return def, nil
	}
	m, ok := asMap(a[0])
	if !ok {
		return nil, fmt.Errorf("%s object has no attribute 'get'", pyType(a[0]))
	}
	k, _ := a[1].(string)
	if v, found := m[k]; found {
		return v, nil
	}
	return def, nil
}

// dictMethod is keys(), values() or items(), in key order (the committed
// state keeps no insertion order).
func dictMethod(name string, item func(m map[string]any, k string) any) pyFunc {
	return func(a ...any) (any, error) {
		if len(a) != 1 {
			return nil, fmt.Errorf("%s() takes no arguments (%d given)", name, len(a)-1)
		}
		m, ok := asMap(a[0])
		if !ok {
			return nil, fmt.Errorf("%s object has no attribute '%s'", pyType(a[0]), name)
		}
		keys := sortedKeys(m)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = item(m, k)
		}
		return out, nil
	}
}

// strMethod is a string method taking n string arguments.
func strMethod(name string, n int, fn func(s string, args []string) any) pyFunc {
	return func(a ...any) (any, error) {
		if len(a) != n+1 {
			return nil, fmt.Errorf("%s() takes %d arguments (%d given)", name, n, len(a)-1)
		}
		s, ok := a[0].(string)
		if !ok {
			return nil, fmt.Errorf("%s object has no attribute '%s'", pyType(a[0]), name)
		}
		args := make([]string, n)
		for i := range args {
			if args[i], ok = a[i+1].(string); !ok {
				return nil, fmt.Errorf("%s() argument must be str, not %s", name, pyType(a[i+1]))
			}
		}
		return fn(s, args), nil
	}
}

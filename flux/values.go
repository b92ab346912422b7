package flux

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Values in conditions are what encoding/json decodes into any (nil,
// bool, float64, string, []any, map[string]any) plus the ints of literals
// and of functions such as len. The helpers below give them Python's
// meaning.

// Limits on what one operation may build, so that a condition cannot
// allocate without bound (see the package doc, Sandbox).
const (
	maxBuiltLen   = 1 << 20 // bytes of a string built by + or str()
	maxBuiltItems = 10000   // items of a list built by + or range()
)

var errTooLarge = errors.New("result too large")

// pyType names v's type as Python would, for messages.
func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "int"
	case float32, float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

// truth is Python truthiness: None, False, 0, "", [] and {} are false.
func truth(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	if f, ok := toFloat(v); ok {
		return f != 0
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len() > 0
	case reflect.Pointer, reflect.Interface:
		return !rv.IsNil()
	}
	return true
}

// toInt returns v as an int when it is an integer type.
func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	case uint:
		if x <= math.MaxInt {
			return int(x), true
		}
	case uint64:
		if x <= math.MaxInt {
			return int(x), true
		}
	}
	return 0, false
}

// toFloat returns v as a float64 when it is a number (not a bool).
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	if i, ok := toInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

// toIndex returns v as an int index: an int, or a float64 with an integral
// value (JSON numbers are float64).
func toIndex(v any) (int, bool) {
	if i, ok := toInt(v); ok {
		return i, true
	}
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f), true
	}
	return 0, false
}

// asList returns v's items when it is a list.
func asList(v any) ([]any, bool) {
	if l, ok := v.([]any); ok {
		return l, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil, false // []byte is not a list
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

// asMap returns v as a map with string keys.
func asMap(v any) (map[string]any, bool) {
	if m, ok := v.(map[string]any); ok {
		return m, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	out := make(map[string]any, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		out[it.Key().String()] = it.Value().Interface()
	}
	return out, true
}

// equal is Python ==: numbers compare by value across int and float,
// lists and dicts compare item by item.
func equal(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	switch x := a.(type) {
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	}
	if la, ok := asList(a); ok {
		lb, ok := asList(b)
		if !ok || len(la) != len(lb) {
			return false
		}
		for i := range la {
			if !equal(la[i], lb[i]) {
				return false
			}
		}
		return true
	}
	if ma, ok := asMap(a); ok {
		mb, ok := asMap(b)
		if !ok || len(ma) != len(mb) {
			return false
		}
		for k, va := range ma {
			vb, ok := mb[k]
			if !ok || !equal(va, vb) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// compare orders a and b as Python does for numbers, strings and lists;
// anything else (None included) is an error.
func compare(a, b any) (int, error) {
	if fa, ok := toFloat(a); ok {
		if fb, ok := toFloat(b); ok {
			switch {
			case fa < fb:
				return -1, nil
			case fa > fb:
				return 1, nil
			}
			return 0, nil
		}
	}
	if sa, ok := a.(string); ok {
		if sb, ok := b.(string); ok {
			return strings.Compare(sa, sb), nil
		}
	}
	if la, ok := asList(a); ok {
		if lb, ok := asList(b); ok {
			for i := 0; i < len(la) && i < len(lb); i++ {
				if c, err := compare(la[i], lb[i]); err != nil || c != 0 {
					return c, err
				}
			}
			return compareInts(len(la), len(lb)), nil
		}
	}
	return 0, fmt.Errorf("cannot order %s and %s", pyType(a), pyType(b))
}

func compareInts(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pyStr is Python's str(); a float with an integral value prints without
// ".0" because JSON does not keep ints apart from floats.
func pyStr(v any) string {
	var b strings.Builder
	writePy(&b, v, false)
	return b.String()
}

func writePy(b *strings.Builder, v any, quote bool) {
	if b.Len() > maxBuiltLen {
		return // the caller checks the length
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
		return
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
		return
	case string:
		if quote {
			b.WriteString(strconv.Quote(x))
		} else {
			b.WriteString(x)
		}
		return
	}
	if i, ok := toInt(v); ok {
		b.WriteString(strconv.Itoa(i))
		return
	}
	if f, ok := toFloat(v); ok {
		b.WriteString(formatFloat(f))
		return
	}
	if l, ok := asList(v); ok {
		b.WriteByte('[')
		for i, item := range l {
			if i > 0 {
				b.WriteString(", ")
			}
			writePy(b, item, true)
		}
		b.WriteByte(']')
		return
	}
	if m, ok := asMap(v); ok {
		b.WriteByte('{')
		for i, k := range sortedKeys(m) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(k))
			b.WriteString(": ")
			writePy(b, m[k], true)
		}
		b.WriteByte('}')
		return
	}
	fmt.Fprint(b, v)
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	case f == math.Trunc(f) && math.Abs(f) < 1e16:
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// pyLen is len(): None has length 0.
func pyLen(v any) (int, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case string:
		return utf8.RuneCountInString(x), nil
	case []any:
		return len(x), nil
	case map[string]any:
		return len(x), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len(), nil
	}
	return 0, fmt.Errorf("object of type %s has no len()", pyType(v))
}

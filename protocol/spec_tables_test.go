package protocol

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The spec's tables are checked against the code: every message's field
// table (<!-- fields:NAME -->) against the Go struct, whose field order
// is the msgpack tuple's; the table of kinds (<!-- kinds -->) against the
// kind numbers; the table of error codes (<!-- codes -->) against the
// codes of errors.go. Adding a field, a kind or a code without writing
// it down fails here.

// wireStructs returns every struct that travels as a msgpack tuple,
// by name: the messages and the structs nested in them.
func wireStructs() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || out[t.Name()] != nil {
			return
		}
		out[t.Name()] = t
		for _, f := range wireFields(t) {
			walk(f.Type)
		}
	}
	for k := Kind(1); k < kindEnd; k++ {
		walk(reflect.TypeOf(New(k)))
	}
	return out
}

// wireFields returns t's fields in tuple order: the struct's order,
// without those msgp skips (msg:"-").
func wireFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && f.Tag.Get("msg") != "-" {
			out = append(out, f)
		}
	}
	return out
}

// wireType names the msgpack type of a Go field as the spec's tables do.
func wireType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Int64, reflect.Bool:
		return t.Kind().String()
	case reflect.String:
		return "str"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "bin"
		}
		return "array of " + wireType(t.Elem())
	case reflect.Pointer:
		return wireType(t.Elem()) + " or nil"
	case reflect.Struct:
		return t.Name()
	}
	return "unsupported " + t.String()
}

// wireLimit returns the decode limit of a field (msg:",limit=N"), or "".
func wireLimit(f reflect.StructField) string {
	for opt := range strings.SplitSeq(f.Tag.Get("msg"), ",") {
		if n, ok := strings.CutPrefix(opt, "limit="); ok {
			return n
		}
	}
	return ""
}

// specTables returns the rows of every table that follows a marker
// <!-- PREFIX:NAME --> (or <!-- PREFIX --> with NAME ""), by NAME: each
// row split into its trimmed cells, header and separator left out.
func specTables(t *testing.T, doc, prefix string) map[string][][]string {
	t.Helper()
	re := regexp.MustCompile(`<!-- ` + prefix + `(?::([A-Za-z]+))? -->\n`)
	out := map[string][][]string{}
	for _, m := range re.FindAllStringSubmatchIndex(doc, -1) {
		name := ""
		if m[2] >= 0 {
			name = doc[m[2]:m[3]]
		}
		if _, dup := out[name]; dup {
			t.Errorf("%s: two tables <!-- %s:%s -->", specPath, prefix, name)
		}
		var rows [][]string
		lines := strings.Split(doc[m[1]:], "\n")
		for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
			lines = lines[1:]
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, "|") {
				break
			}
			if i < 2 { // the header and the separator
				continue
			}
			cells := strings.Split(strings.Trim(l, "|"), "|")
			for j := range cells {
				cells[j] = strings.TrimSpace(cells[j])
			}
			rows = append(rows, cells)
		}
		if len(rows) == 0 {
			t.Errorf("%s: no table after <!-- %s:%s -->", specPath, prefix, name)
		}
		out[name] = rows
	}
	return out
}

// cellText is a cell without its code or link markup.
func cellText(c string) string {
	c = strings.Trim(c, "`")
	if strings.HasPrefix(c, "[") {
		if i := strings.Index(c, "]"); i > 0 {
			c = strings.Trim(c[1:i], "`")
		}
	}
	return c
}

// TestSpecFieldTables: every wire struct has a table whose rows are its
// fields in order, with their index, msgpack type and decode limit.
func TestSpecFieldTables(t *testing.T) {
	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	tables := specTables(t, string(doc), "fields")
	for name, typ := range wireStructs() {
		rows, ok := tables[name]
		if !ok {
			t.Errorf("%s: no field table for %s (a table after <!-- fields:%s -->: | # | field | type | limits | meaning |)", specPath, name, name)
			continue
		}
		delete(tables, name)
		fields := wireFields(typ)
		for i, f := range fields {
			if i >= len(rows) {
				t.Errorf("%s: table of %s: field %d %s (%s) is missing", specPath, name, i, f.Name, wireType(f.Type))
				continue
			}
			r := rows[i]
			if len(r) != 5 {
				t.Errorf("%s: table of %s, row %d: %d cells, want 5 (# | field | type | limits | meaning)", specPath, name, i, len(r))
				continue
			}
			if r[0] != strconv.Itoa(i) || cellText(r[1]) != f.Name || cellText(r[2]) != wireType(f.Type) {
				t.Errorf("%s: table of %s, row %d is %q %q %q; want %d %q %q", specPath, name, i, r[0], r[1], r[2], i, f.Name, wireType(f.Type))
			}
			if l := wireLimit(f); l != "" && !strings.Contains(r[3], l) {
				t.Errorf("%s: table of %s, %s: the limits %q do not say the decode limit %s", specPath, name, f.Name, r[3], l)
			}
			if r[4] == "" {
				t.Errorf("%s: table of %s, %s: no meaning", specPath, name, f.Name)
			}
		}
		if len(rows) > len(fields) {
			t.Errorf("%s: table of %s has %d rows; %s has %d fields", specPath, name, len(rows), name, len(fields))
		}
	}
	for name := range tables {
		t.Errorf("%s: a field table for %s, which is not a wire struct", specPath, name)
	}
}

// TestSpecKinds: the table of kinds has one row per kind, in order, with
// its number and its message.
func TestSpecKinds(t *testing.T) {
	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	rows := specTables(t, string(doc), "kinds")[""]
	if len(rows) != int(kindEnd)-1 {
		t.Errorf("%s: the table of kinds has %d rows, want %d", specPath, len(rows), kindEnd-1)
	}
	for i, r := range rows {
		k := Kind(i + 1)
		if k >= kindEnd || len(r) < 2 {
			break
		}
		name := reflect.TypeOf(New(k)).Elem().Name()
		if r[0] != strconv.Itoa(int(k)) || cellText(r[1]) != name {
			t.Errorf("%s: kinds row %d is %q %q, want %d %s", specPath, i, r[0], r[1], k, name)
		}
	}
}

// TestSpecErrorCodes: every code of errors.go is in the table of codes.
func TestSpecErrorCodes(t *testing.T) {
	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range specTables(t, string(doc), "codes")[""] {
		listed[cellText(r[0])] = true
	}
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		vs, ok := node.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Code") || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		code, _ := strconv.Unquote(lit.Value)
		n++
		if !listed[code] {
			t.Errorf("%s: the table of error codes has no row for %s (%s)", specPath, code, vs.Names[0].Name)
		}
		return true
	})
	if n < 10 {
		t.Fatalf("found %d codes in errors.go: the parse is broken", n)
	}
}

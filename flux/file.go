package flux

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Kind is what a file is.
type Kind uint8

// Kinds of file.
const (
	KindWorkflow Kind = iota + 1 // root steps:
	KindMachine                  // root states:
)

func (k Kind) String() string {
	switch k {
	case KindWorkflow:
		return "workflow"
	case KindMachine:
		return "machine"
	}
	return "kind?"
}

// Meta is a file's metadata: the root keys name, description and version.
type Meta struct {
	Name, Description, Version string
}

// File is a loaded, validated and compiled Flux file.
type File struct {
	Name     string // file base name without .yaml/.yml (this is the workflow/machine name)
	Path     string
	Kind     Kind
	Meta     Meta
	Workflow *Program // KindWorkflow
	Machine  *Machine // KindMachine
}

// Load parses and validates one file. known reports whether a process name exists (nil: every
// name is accepted). All problems found are returned together in a *LoadError.
func Load(path string, src []byte, known func(process string) bool) (*File, error) {
	l := &loader{path: path, known: known}
	f := l.load(src)
	if err := newLoadError(l.problems); err != nil {
		return nil, err
	}
	return f, nil
}

// fileName returns the workflow or machine name of a file: its base name
// without .yaml or .yml.
func fileName(path string) string {
	base := filepath.Base(path)
	for _, ext := range []string{".yaml", ".yml"} {
		if name, ok := strings.CutSuffix(base, ext); ok {
			return name
		}
	}
	return base
}

func (l *loader) load(src []byte) *File {
	start := Pos{File: l.path, Line: 1, Col: 1}
	if len(src) > MaxFileSize {
		l.problem(start, "the file is over the limit of %d bytes", MaxFileSize)
		return nil
	}
	doc, ok := l.parse(src, start)
	if !ok {
		return nil
	}
	f := &File{Name: fileName(l.path), Path: l.path}
	root := l.value(doc, start)
	if isNull(root) {
		l.problem(start, "the file is empty: a workflow needs steps:, a machine states:")
		return nil
	}
	rootPos := l.pos(stepHead(root), start)
	es, ok := l.mapping(root, start, "the root")
	if !ok {
		return nil
	}
	byKey := map[string]entry{}
	for _, e := range es {
		byKey[e.key] = e
	}
	steps, hasSteps := byKey["steps"]
	states, hasStates := byKey["states"]
	switch {
	case hasSteps && hasStates:
		later := steps
		if comparePos(states.keyPos, steps.keyPos) > 0 {
			later = states
		}
		l.problem(later.keyPos, "a file has steps: (a workflow) or states: (a machine), not both")
		return nil
	case hasSteps:
		f.Kind = KindWorkflow
		l.checkKeys(es, "a workflow file", "name", "description", "version", "steps")
		c := &compiler{l: l}
		c.block(steps.value, steps.keyPos, blockKind{key: "steps"}, 1)
		f.Workflow = &c.prog
	case hasStates:
		f.Kind = KindMachine
		l.checkKeys(es, "a machine file", "name", "description", "version", "states", "initial")
		var initial *entry
		if e, ok := byKey["initial"]; ok {
			initial = &e
		}
		f.Machine = l.machine(states, initial, rootPos)
	default:
		l.problem(rootPos, "missing steps: (a workflow) or states: (a machine)")
		l.checkKeys(es, "a workflow file", "name", "description", "version", "steps")
		return nil
	}
	f.Meta = l.meta(byKey)
	return f
}

// parse parses src and returns the body of its single document.
func (l *loader) parse(src []byte, start Pos) (body ast.Node, ok bool) {
	file, tooDeep, err := parseSafely(src)
	if tooDeep != nil {
		l.problem(Pos{File: l.path, Line: tooDeep.Position.Line, Col: tooDeep.Position.Column},
			"the YAML is nested deeper than %d levels", maxYAMLDepth)
		return nil, false
	}
	if err != nil {
		l.problem(l.syntaxPos(err, start), "YAML: %s", syntaxMsg(err))
		return nil, false
	}
	if len(file.Docs) == 0 {
		return nil, true
	}
	for _, d := range file.Docs[1:] {
		if d.Body != nil {
			l.problem(l.pos(stepHead(d.Body), start), "a Flux file holds one YAML document, this is a second one")
			return nil, false
		}
	}
	return file.Docs[0].Body, true
}

// parseSafely tokenizes src, refuses it when it is nested too deep for
// the parser (returning the token where it gets too deep), and parses it.
// A panic inside go-yaml is turned into an error: a file is input, and
// Load must not crash on any input.
func parseSafely(src []byte) (f *ast.File, tooDeep *token.Token, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML parser failed: %v", r)
		}
	}()
	tokens := lexer.Tokenize(string(src))
	if tk, _ := yamlDepth(tokens); tk != nil {
		return nil, tk, nil
	}
	f, err = parser.Parse(tokens, 0)
	return f, nil, err
}

func (l *loader) syntaxPos(err error, start Pos) Pos {
	var se *yaml.SyntaxError
	if errors.As(err, &se) && se.Token != nil && se.Token.Position != nil {
		return Pos{File: l.path, Line: se.Token.Position.Line, Col: se.Token.Position.Column}
	}
	var de *yaml.DuplicateKeyError
	if errors.As(err, &de) && de.Token != nil && de.Token.Position != nil {
		return Pos{File: l.path, Line: de.Token.Position.Line, Col: de.Token.Position.Column}
	}
	return start
}

// syntaxMsg is go-yaml's message without its source excerpt.
func syntaxMsg(err error) string {
	var se *yaml.SyntaxError
	if errors.As(err, &se) {
		return se.Message
	}
	var de *yaml.DuplicateKeyError
	if errors.As(err, &de) {
		return de.Message
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// meta reads the metadata keys.
func (l *loader) meta(byKey map[string]entry) Meta {
	text := func(key string) string {
		e, ok := byKey[key]
		if !ok {
			return ""
		}
		v := l.value(e.value, e.keyPos)
		if isNull(v) {
			return ""
		}
		s, ok := scalarText(v)
		if !ok {
			l.problem(l.pos(v, e.keyPos), "%s: must be text, not %s", key, kindOf(v))
		}
		return s
	}
	return Meta{Name: text("name"), Description: text("description"), Version: text("version")}
}

// LoadDir loads every *.yaml and *.yml in dir (not recursive), sorted by name; two files with the
// same name (a.yaml and a.yml) are an error; all problems of all files in one *LoadError.
func LoadDir(dir string, known func(string) bool) ([]*File, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("flux: %w", err)
	}
	var (
		files    []*File
		problems []Problem
		seen     = map[string]string{} // name -> path
	)
	for _, de := range ents { // ReadDir sorts by file name
		ext := filepath.Ext(de.Name())
		if de.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		path := filepath.Join(dir, de.Name())
		name := fileName(path)
		if other, dup := seen[name]; dup {
			problems = append(problems, Problem{
				Pos: Pos{File: path, Line: 1, Col: 1},
				Msg: fmt.Sprintf("the name %q is also used by %s", name, other),
			})
			continue
		}
		seen[name] = path
		src, err := readLimited(path)
		if err != nil {
			return nil, err
		}
		f, err := Load(path, src, known)
		var le *LoadError
		if errors.As(err, &le) {
			problems = append(problems, le.Problems...)
			continue
		}
		files = append(files, f)
	}
	if err := newLoadError(problems); err != nil {
		return nil, err
	}
	return files, nil
}

// readLimited reads a file, at most MaxFileSize+1 bytes (enough for Load
// to refuse it as too large).
func readLimited(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flux: %w", err)
	}
	defer fh.Close()
	src, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("flux: %w", err)
	}
	return src, nil
}

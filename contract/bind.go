package contract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// compiled is a Spec's declarations cut into segments once, for Bind.
type compiled struct {
	inputs, outputs []declPath
	names           []string // the arg names the templates use, each once
}

// declPath is one declared path: its text, its segments, and the
// template of each segment that is one (nil for a plain segment).
type declPath struct {
	text  string
	segs  []string
	tmpls []*tmpl // nil when the path has no template
}

// compile cuts declarations into segments. A segment that is not a valid
// template stays literal (NewSpec refuses it; Parse refuses a Spec built
// without NewSpec that has one).
func compile(inputs, outputs []string) *compiled {
	c := &compiled{}
	cut := func(decl []string) []declPath {
		out := make([]declPath, len(decl))
		for i, text := range decl {
			d := declPath{text: text}
			if strings.Contains(text, "{") {
				d.segs = strings.Split(text, ".")
				for j, seg := range d.segs {
					t, ok, err := parseTmpl(seg)
					if err != nil || !ok {
						continue
					}
					if d.tmpls == nil {
						d.tmpls = make([]*tmpl, len(d.segs))
					}
					d.tmpls[j] = &t
					if !slices.Contains(c.names, t.name) {
						c.names = append(c.names, t.name)
					}
				}
			}
			out[i] = d
		}
		return out
	}
	c.inputs, c.outputs = cut(inputs), cut(outputs)
	return c
}

// maxPooledArgs is the largest args whose decoder goes back to the pool:
// a decoder keeps the buffer it grew, and args may be as large as a frame.
const maxPooledArgs = 64 << 10

// decoders are reused by argValues: a Decoder keeps buffers worth keeping.
var decoders = sync.Pool{New: func() any {
	ad := &argDecoder{}
	ad.dec = jsontext.NewDecoder(&ad.r)
	return ad
}}

type argDecoder struct {
	r   bytes.Reader
	dec *jsontext.Decoder
	unq []byte // a name with escapes, unquoted
}

// argVal is the last value args gave a name a template uses.
type argVal struct {
	s    string        // the string; "" for null
	kind jsontext.Kind // 0: absent; '"' or 'n'; another kind is an error when the name is used
}

// argVals holds the values of compiled.names, in their order.
type argVals []argVal

// get returns the value of name, the zero argVal when absent.
func (c *compiled) get(vals argVals, name string) argVal {
	if i := slices.Index(c.names, name); i >= 0 {
		return vals[i]
	}
	return argVal{}
}

// argValues reads args, a JSON object (or empty, or null), into vals
// (len(c.names) long): the values of the names the templates use. Other
// members may be anything valid. Invalid UTF-8 is mangled and duplicate
// names allowed, the last one winning, as encoding/json does.
func (c *compiled) argValues(process string, args []byte, vals argVals) error {
	if len(args) == 0 {
		return nil
	}
	ad := decoders.Get().(*argDecoder)
	if len(args) <= maxPooledArgs {
		defer decoders.Put(ad) // else it drops the buffer it grew to hold args
	}
	ad.r.Reset(args)
	ad.dec.Reset(&ad.r, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	defer func() { // keep no reference to args
		ad.r.Reset(nil)
		ad.dec.Reset(&ad.r)
	}()
	notObject := func(err error) error {
		return fmt.Errorf("%w: %s: args are not a JSON object: %v", ErrBadArg, process, err)
	}
	tok, err := ad.dec.ReadToken()
	if err != nil {
		return notObject(err)
	}
	switch tok.Kind() {
	case 'n': // null: no args
	case '{':
		for ad.dec.PeekKind() == '"' {
			raw, err := ad.dec.ReadValue() // the name, quoted: valid until the next read
			if err != nil {
				return notObject(err)
			}
			i := c.nameIndex(raw, &ad.unq)
			if i < 0 {
				if err := ad.dec.SkipValue(); err != nil {
					return notObject(err)
				}
				continue
			}
			a := argVal{kind: ad.dec.PeekKind()}
			switch a.kind {
			case '"':
				v, err := ad.dec.ReadToken()
				if err != nil {
					return notObject(err)
				}
				a.s = v.String()
			default: // null, or not a string: an error if the name is used
				if err := ad.dec.SkipValue(); err != nil {
					return notObject(err)
				}
			}
			vals[i] = a
		}
		if _, err := ad.dec.ReadToken(); err != nil { // the closing brace, or why not
			return notObject(err)
		}
	default:
		return notObject(fmt.Errorf("a JSON %s", tok.Kind()))
	}
	if _, err := ad.dec.ReadToken(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("more after the object")
		}
		return notObject(err)
	}
	return nil
}

// nameIndex returns the index in c.names of the member name quoted in
// raw, or -1. A name without escapes is compared where it is; one with
// them is unquoted into *buf first.
func (c *compiled) nameIndex(raw jsontext.Value, buf *[]byte) int {
	name := []byte(raw)
	if len(name) < 2 {
		return -1
	}
	if bytes.IndexByte(name, '\\') < 0 {
		name = name[1 : len(name)-1]
	} else {
		unq, err := jsontext.AppendUnquote((*buf)[:0], raw)
		if err != nil {
			return -1 // invalid UTF-8 in it: not one of the names, which are [a-z0-9_]
		}
		*buf, name = unq, unq
	}
	for i, n := range c.names {
		if string(name) == n {
			return i
		}
	}
	return -1
}

package flux

import (
	"github.com/goccy/go-yaml/token"
)

// maxYAMLDepth bounds the nesting of a file's YAML before it is parsed:
// go-yaml's parser takes time (and memory, for node paths) that grows with
// the nesting depth times the number of nodes, so 100000 unclosed "[" take
// it minutes. A valid file needs about two YAML levels per block (a list
// and a step mapping) plus the nesting of an args value, well under this.
const maxYAMLDepth = 2*MaxDepth + maxValueDepth + 64

// yamlDepth returns an estimate of the nesting depth of tokens and the
// token where it first exceeds maxYAMLDepth (nil when it does not). Flow
// collections count one level each; block collections count one level per
// distinct indentation column open at a point (a list under a key at the
// same column counts once, so the estimate is at least half the truth).
func yamlDepth(tokens token.Tokens) (*token.Token, int) {
	var (
		flow  int
		block []int // columns of the open block collections
		max   int
	)
	for i, tk := range tokens {
		if tk.Position == nil {
			continue
		}
		col := -1 // the column of a block collection entry this token opens
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			if flow > 0 {
				flow--
			}
		case token.DocumentHeaderType:
			flow, block = 0, block[:0]
		case token.SequenceEntryType:
			if flow == 0 {
				col = tk.Position.Column
			}
		case token.MappingValueType, token.MappingKeyType:
			if flow == 0 {
				col = tk.Position.Column
				if tk.Type == token.MappingValueType && i > 0 && tokens[i-1].Position != nil {
					col = tokens[i-1].Position.Column // the key's column
				}
			}
		}
		if col >= 0 {
			for len(block) > 0 && block[len(block)-1] >= col {
				block = block[:len(block)-1]
			}
			block = append(block, col)
		}
		if d := flow + len(block); d > max {
			max = d
			if max > maxYAMLDepth {
				return tk, max
			}
		}
	}
	return nil, max
}

// Package regmodel is the porcupine model that the linearizability tests
// check histories against: one versioned register per path, histories
// partitioned by path. A read returns the value and the version that
// wrote it; a read-modify-write returns what it read and the version its
// commit made. It is shared by the tests of cas (one store) and
// etcdstore (several stores on one etcd cluster); it owns no state.
package regmodel

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// Input is one operation on a register.
type Input struct {
	Path  string
	Write bool  // read-modify-write; else a read
	Val   int64 // the value a write stores
}

// Output is what an operation returned.
type Output struct {
	Val     int64 // read: the value seen; write: the value it read before writing
	Present bool
	Ver     uint64 // read: the version of the value seen; write: the commit's version
}

type state struct {
	val     int64
	present bool
	ver     uint64
}

// Model checks that reads see the latest write's value and version, and
// that each read-modify-write read the value before it and committed at a
// later version.
var Model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byPath := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range h {
			p := op.Input.(Input).Path
			if _, ok := byPath[p]; !ok {
				order = append(order, p)
			}
			byPath[p] = append(byPath[p], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, p := range order {
			out = append(out, byPath[p])
		}
		return out
	},
	Init: func() any { return state{} },
	Step: func(st, input, output any) (bool, any) {
		s, in, out := st.(state), input.(Input), output.(Output)
		if out.Present != s.present || out.Present && out.Val != s.val {
			return false, s
		}
		if !in.Write {
			return out.Ver == s.ver, s
		}
		if out.Ver <= s.ver {
			return false, s
		}
		return true, state{val: in.Val, present: true, ver: out.Ver}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		if in.Write {
			return fmt.Sprintf("rmw(%s) read %d/%v wrote %d at v%d", in.Path, out.Val, out.Present, in.Val, out.Ver)
		}
		return fmt.Sprintf("get(%s) = %d/%v v%d", in.Path, out.Val, out.Present, out.Ver)
	},
}

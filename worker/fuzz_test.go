package worker

import (
	"context"
	"testing"

	"github.com/theus-run/theus/protocol"
)

type fuzzArgs struct {
	N    int64             `json:"n"`
	S    string            `json:"s"`
	List []int             `json:"list"`
	Map  map[string]string `json:"map"`
}

// FuzzDispatch runs a process on arbitrary args and inputs, as a
// supervisor (or an attacker posing as one) could send them: the SDK must
// never panic, and must answer with a result or a coded error.
func FuzzDispatch(f *testing.F) {
	f.Add([]byte(`{"n":1,"s":"x","list":[1,2],"map":{"a":"b"}}`), "domain.x", []byte(`5`))
	f.Add([]byte(`{"n":"x"}`), "domain.x.y", []byte(`{`))
	f.Add([]byte(``), "", []byte(nil))
	d := Process("p", Contract{Inputs: []string{"domain.x"}, Outputs: []string{"domain.y"}}, func(ctx *Ctx, in fuzzArgs) (int64, error) {
		var v any
		ctx.Get("domain.x", &v)
		ctx.Children("domain.x")
		return in.N, ctx.Set("domain.y", in)
	})
	f.Fuzz(func(t *testing.T, args []byte, path string, value []byte) {
		res := d.Run(context.Background(), &protocol.Dispatch{ID: 1, Process: "p", Args: args, Inputs: []protocol.Entry{{Path: path, Value: value}}})
		if res.Err == nil && len(res.Writes) != 1 {
			t.Fatalf("success with %d writes", len(res.Writes))
		}
		if res.Err != nil && res.Err.Code == "" {
			t.Fatal("an error without a code")
		}
	})
}

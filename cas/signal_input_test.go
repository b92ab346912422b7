package cas_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// A signal is checked like a write: a malformed path or an oversized
// value is ErrInvalidDelta, and the commit applies nothing and takes no
// version (found by mutation: no test refused a bad signal path).
func TestBadSignalCommitsNothing(t *testing.T) {
	var committed int
	s := cas.New(cas.Config{Committed: func(cas.Commit) { committed++ }})
	var d cas.Delta
	d.Set(P("domain.x"), []byte{1})
	for _, sig := range []cas.Write{
		{Path: contract.Path("domain..sig"), Op: contract.OpSet, Value: []byte{1}},
		{Path: contract.Path(""), Op: contract.OpSet},
		{Path: P("domain.sig_big"), Op: contract.OpSet, Value: make([]byte, cas.MaxValueLen+1)},
	} {
		_, err := s.Commit(bg, s.Version(), nil, d, cas.Options{Signals: []cas.Write{sig}})
		if !errors.Is(err, cas.ErrInvalidDelta) || !strings.Contains(err.Error(), "signal") {
			t.Fatalf("signal at %q: got %v, want ErrInvalidDelta naming the signal", sig.Path, err)
		}
		if s.Version() != 0 || committed != 0 {
			t.Fatalf("signal at %q: store at %d, %d commits seen; want nothing applied", sig.Path, s.Version(), committed)
		}
	}
}

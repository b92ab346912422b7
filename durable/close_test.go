package durable

import (
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// Close may be called twice (a failed Start and a deferred cleanup both
// close): the second returns the first's result and does not panic.
func TestCloseTwice(t *testing.T) {
	o := openStore(t, Config{Dir: t.TempDir(), Mode: Sync})
	o.commit(t, "", func(d *cas.Delta) { d.Set(contract.Path("domain.a"), []byte("1")) })
	first := o.j.Close()
	if second := o.j.Close(); second != first {
		t.Fatalf("second Close = %v, first %v", second, first)
	}
}

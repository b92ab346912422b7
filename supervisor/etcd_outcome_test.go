package supervisor

import (
	"errors"
	"fmt"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/protocol"
)

// TestOutcomeUnknown: a commit etcd did not answer is recognised through
// the Runner's wrapping, so its tensors keep their blocks; a refusal, a
// conflict or an unavailable cluster (nothing sent) is not.
func TestOutcomeUnknown(t *testing.T) {
	uncertain := &etcdstore.UncertainError{Err: errors.New("context deadline exceeded")}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{uncertain, true},
		{&cas.RunError{Process: "p", Attempts: 1, Err: uncertain}, true},
		{fmt.Errorf("commit: %w", &cas.RunError{Process: "p", Attempts: 2, Err: uncertain}), true},
		{nil, false},
		{&cas.RunError{Process: "p", Attempts: 3, Err: cas.ErrRetryLimit}, false},
		{&cas.ConflictError{Reason: "strict"}, false},
		{etcdstore.ErrUnavailable, false},
		{protocol.Errorf(protocol.CodeNotDurable, "the disk failed"), false},
	} {
		if got := outcomeUnknown(c.err); got != c.want {
			t.Errorf("outcomeUnknown(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

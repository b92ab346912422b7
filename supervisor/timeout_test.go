package supervisor

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/protocol"
)

// TestExecuteTimeouts: a huge TimeoutMS is clamped (it used to overflow
// into a deadline in the past), a negative one is refused, and a client
// timeout under a millisecond is a timeout, not the supervisor's default.
func TestExecuteTimeouts(t *testing.T) {
	h := start(t, 1, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		ms   int64
		want *protocol.Error // nil: success
	}{
		{name: "1e13", ms: 1e13},
		{name: "max", ms: math.MaxInt64},
		{name: "negative", ms: -1, want: protocol.ErrBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := h.s.Execute(ctx, &protocol.Execute{Process: "noop", TimeoutMS: tt.ms})
			if (rep.Err == nil) != (tt.want == nil) || rep.Err != nil && !errors.Is(rep.Err, tt.want) {
				t.Fatalf("TimeoutMS %d: %v, want %v", tt.ms, rep.Err, tt.want)
			}
		})
	}
	c := h.dial(t)
	if _, err := c.Do(ctx, client.Request{Process: "fault.sleep", Args: map[string]int{"ms": 5000}, Timeout: time.Nanosecond}); !errors.Is(err, protocol.ErrTimeout) {
		t.Fatalf("a 1ns timeout: %v, want timeout", err)
	}
	if _, err := c.Do(ctx, client.Request{Process: "noop", Timeout: -time.Second}); !errors.Is(err, protocol.ErrBadRequest) {
		t.Fatalf("a negative timeout: %v, want bad_request", err)
	}
}

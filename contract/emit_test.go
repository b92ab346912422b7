package contract_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/theus-run/theus/contract"
)

func TestCheckEmit(t *testing.T) {
	effect := contract.Contract{Name: "p", Semantic: contract.Effect}
	pure := contract.Contract{Name: "p"}
	tests := []struct {
		name  string
		c     contract.Contract
		topic string
		want  error
	}{
		{name: "ok", c: effect, topic: "orders"},
		{name: "dashes and digits", c: effect, topic: "order-events_2"},
		{name: "longest", c: effect, topic: strings.Repeat("t", contract.MaxTopicLen)},
		{name: "empty", c: effect, topic: "", want: contract.ErrInvalidTopic},
		{name: "dotted", c: effect, topic: "orders.eu", want: contract.ErrInvalidTopic},
		{name: "too long", c: effect, topic: strings.Repeat("t", contract.MaxTopicLen+1), want: contract.ErrInvalidTopic},
		{name: "bad byte", c: effect, topic: "or ders", want: contract.ErrInvalidTopic},
		{name: "private", c: effect, topic: "internal_x", want: contract.ErrInvalidTopic},
		{name: "signal", c: effect, topic: "sig_x", want: contract.ErrInvalidTopic},
		{name: "heavy", c: effect, topic: "heavy", want: contract.ErrInvalidTopic},
		{name: "log", c: effect, topic: "log_x", want: contract.ErrInvalidTopic},
		{name: "pure", c: pure, topic: "orders", want: contract.ErrEmitInPure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.CheckEmit(tt.topic)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckEmit(%q) = %v, want %v", tt.topic, err, tt.want)
			}
			var v *contract.Violation
			if errors.Is(tt.want, contract.ErrEmitInPure) && !errors.As(err, &v) {
				t.Fatalf("a PURE emit is %T, want a *Violation", err)
			}
		})
	}
}

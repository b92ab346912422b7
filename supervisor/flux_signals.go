package supervisor

import (
	"github.com/theus-run/theus/flux"
)

// Signals subscribes a run or machine to every committed signal, once
// durable, in version order (flux.HubSignals).
func (h fluxHost) Signals() (<-chan flux.Signal, func()) {
	return flux.HubSignals(h.s.signals)
}

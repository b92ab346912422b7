package protocol

// The methods a Call names. Their bodies are JSON objects, described in
// docs/FLUX.md (stats and log: docs/OPERATIONS.md).
const (
	MethodFluxValidate  = "flux.validate"
	MethodFluxRun       = "flux.run"
	MethodFluxStatus    = "flux.status"
	MethodFluxCancel    = "flux.cancel"
	MethodFluxList      = "flux.list"
	MethodFSMStart      = "fsm.start"
	MethodFSMStatus     = "fsm.status"
	MethodFSMSend       = "fsm.send"
	MethodFSMList       = "fsm.list"
	MethodSignalPublish = "signal.publish"
	MethodOutboxPull    = "outbox.pull"
	MethodOutboxAck     = "outbox.ack"
	MethodAuditStatus   = "audit.status"
	MethodAuditLog      = "audit.log"
	MethodAuditReload   = "audit.reload"
	MethodAuditResume   = "audit.resume"
	MethodStats         = "stats"
	MethodLog           = "log"
)

// The streams a Subscribe names.
const (
	StreamSignals = "signal.watch"
	StreamFlux    = "flux.watch"
	StreamLog     = "log.follow"
)

// Package supervisor owns a running theus: the Context store and its VIP
// arbiter, the worker pools, and the client socket. It turns each Execute
// into an invocation of the CAS runner whose attempts are dispatches to a
// worker: snapshot the contract's inputs, dispatch, check the delta
// against the contract, commit; on conflict back off and dispatch again on
// a fresh snapshot; after K conflicts hold a VIP ticket. A worker that
// crashes mid-dispatch committed nothing, so the dispatch is sent again,
// to another worker, a bounded number of times. With an audit recipe
// (Config.Audit) it also checks a call's args before dispatch and the
// delta that would commit before the commit (audit.go). With Config.Etcd
// the Context lives in an etcd cluster that several supervisors share
// (etcd.go): the runner commits through it and takes its tickets there.
//
// It never runs user code in its own process and never trusts a worker:
// every write a worker returns is checked against the contract the worker
// declared at its handshake, and every value must be JSON.
package supervisor

//go:build !linux

package shm

// The supervisor and its workers need Linux: memfd slabs with seals,
// SO_PEERCRED, Pdeathsig, SOCK_SEQPACKET with SCM_RIGHTS, a child
// subreaper. theusctl and the client package build on macOS too.
var _ = theus_runs_workers_on_linux_only

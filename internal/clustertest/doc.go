// Package clustertest holds the tests of several supervisors sharing one
// Context in etcd (supervisor.Config.Etcd): a real 3-member cluster
// (internal/etcdtest) and in-process supervisors whose workers are this
// package's test binary. It has no code of its own; its tests live apart
// from the supervisor package's because the embedded etcd members leave
// idle HTTP connections behind, which that package's leak check refuses.
package clustertest

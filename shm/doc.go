// Package shm owns theus's shared memory for the HEAVY zone: regions
// backed by a memfd (never a name in /dev/shm, so nothing outlives its
// processes), sealed so no peer can shrink or grow them, with their pages
// reserved and pre-faulted up front; the allocator that hands out blocks
// of a region by offset, each with a generation and an owner; and the
// descriptors that name a tensor in a block (dtype, shape, strides) and
// are validated before use.
//
// The kernel, not convention, enforces who may write: a peer that is
// given a read-only descriptor (ReadOnlyFile) cannot map it writable or
// make its mapping writable, and once SealFutureWrite is set nobody can
// create a new writable mapping of the region, even by reopening it
// through /proc.
//
// It never interprets tensor contents, never sends descriptors anywhere
// (that is ipc's job) and keeps its bookkeeping in the owner's private
// memory: nothing it trusts lives in shared memory.
package shm

// Package heavy owns the HEAVY zone of a supervisor: the shared-memory
// slabs of its workers, who may write which block, and when a block is
// freed. Each worker writes only its own slab, which it maps read-write
// once and which is then sealed against every other writable mapping;
// every worker maps every slab read-only. The zone hands out blocks,
// validates the descriptors a worker returns (on the supervisor's own copy
// of them), and frees a tensor's block when the invocation that made it
// fails, or once no snapshot can see it.
//
// It reads and writes tensor data in one case only: Move copies a dead
// worker's committed tensors into a live slab. It never touches the DATA
// zone: the supervisor stores descriptors there and tells the zone what
// was committed and what was dropped. The slab packet's wire format is
// protocol's (SlabPacket); the zone only sends packets.
package heavy

// Package ring owns the shared-memory ring pair between the supervisor
// and one worker incarnation: one sealed memfd (made by shm, then sealed
// against every further seal) holding two single-producer single-consumer
// rings, the request ring (supervisor to worker) and the reply ring
// (worker to supervisor), and the protocol by which a consumer parks on a
// futex word and a producer wakes it only when it announced that it parks.
// docs/PROTOCOL.md#rings draws the layout, field by field, and says
// how pool and worker use it; docs/RINGS.md says why it is built so.
//
// # Basics
//
// New makes a pair and maps it for the supervisor; Pair.File is the memfd
// to pass to the worker, which maps it with Map(f, Worker). Each side then
// has one Writer and one Reader. A record is a length header, the payload
// and padding to 8 bytes; Writer.Write publishes one record, Reserve and
// Append add records that Commit publishes together (and wakes the peer
// at most once for all of them). Reader.Read and ReadBatch copy records
// out; Reader.Wait blocks until there is one. A full ring is ErrFull, at
// once: the caller sends over its socket instead, or waits (Writer.Wait).
// Shared lets many goroutines of one side produce into its Writer. A
// consumer parks on a futex, or, after SetDoorbells on both sides (with
// each side's ends of the pipes of NewDoorbells), on a pipe read through
// the netpoller, so that no thread waits.
//
// # Caveats
//
// The peer is untrusted: it can write anything anywhere in the shared
// memory at any time, also after publishing. A Reader keeps its own head,
// bounds-checks every counter, offset and length it reads from the ring,
// reads each header once and copies the payload out before returning it,
// and never panics: a ring that breaks the rules is a *CorruptError
// (errors.Is ErrCorrupt and protocol.ErrBadFrame), sticky, after which
// the caller kills the worker. A Writer checks the head the consumer
// publishes the same way. A peer can still refuse to wake us, so every
// wait takes a context, and Pair.Close interrupts it; neither goes
// through anything the peer can touch (the park words, the doorbells),
// and no doorbell operation blocks whatever the peer does with its ends.
//
// A Writer and a Reader each belong to one goroutine at a time. Close may
// be called from any goroutine while Wait blocks (it interrupts it), but
// not while Read, Write or Reserve run. The package never interprets a
// record, never sends the memfd anywhere (that is ipc's job) and does not
// spin unless a Reader is told to (SetSpin): on shared cores spinning
// takes the CPU the peer needs.
package ring

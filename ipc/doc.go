// Package ipc owns theus's sockets: the socketpair between the supervisor
// and a worker, the client socket (a path in a 0700 directory, mode 0600,
// peer uid checked with SO_PEERCRED before any frame is read), and Conn,
// which moves protocol frames over either with batched writes and
// deadlines, and bounds what frames still arriving may hold (Budget,
// Options.FrameTimeout).
//
// It never interprets a message beyond its frame: what a Dispatch or an
// Execute means is the business of pool, supervisor, worker and client.
package ipc

// Package contract owns context paths and process contracts: it parses and
// validates paths, classifies them by layer and zone, and decides whether a
// process may read or write a path, or emit an outbox message on a topic.
// It never stores values and never talks to another process; the
// supervisor, the worker SDK and the CAS engine all ask it the same
// questions so the rules live in one place.
//
// # Basics
//
// A path is a dot-separated list of segments such as domain.accounts.alice.
// Its first segment names the layer (global, domain, local). Segment
// prefixes name the zone: heavy / heavy_* (HEAVY), sig_* and cmd_* (SIGNAL),
// meta_* (META), log_* (LOG), const_* (CONST), internal_* (PRIVATE);
// anything else is DATA. A declared contract path covers its whole subtree.
//
// # Caveats
//
// Zone rules apply to every segment, not only the last: a path with any
// internal_* segment is PRIVATE for reading, a path with any const_* segment
// is CONST for writing, and everything under a log_* segment is append-only.
package contract

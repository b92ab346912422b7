// Package conformance checks that docs/PROTOCOL.md alone is enough to
// speak the wire protocol: theus_client.py and theus_worker.py were
// written from that document and nothing else, and the test in this
// package runs them against a real supervisor. FINDINGS.md lists what
// the document left out or got wrong. The package has no code of its own.
package conformance

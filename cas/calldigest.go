package cas

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
)

// CallDigest binds an op id to its call: the SHA-256 of the process
// name, a zero byte and the canonical args. Every runtime that takes op
// ids (the supervisor, the WebAssembly build) digests a call this way,
// so a retried op id is recognised whichever spelling of the args it
// comes with, and refused (OpIDConflictError) with other args.
func CallDigest(process string, args []byte) OpDigest {
	var d OpDigest
	h := sha256.New()
	h.Write([]byte(process))
	h.Write([]byte{0})
	h.Write(canonicalArgs(args))
	return OpDigest(h.Sum(d[:0]))
}

// canonicalArgs returns JSON args in one form for every spelling of the
// same value: object keys sorted, no whitespace, strings escaped one way
// (invalid UTF-8 becomes U+FFFD, as a Go process decodes it), the last of
// duplicate keys kept (as Go and Python decoders keep it). Numbers keep
// their text: 1, 1.0 and 1e0 differ, since a process may decode an int or
// a float. Absent, empty and null args are one form, empty: a process sees
// no args for all three (worker.Process decodes null as the zero value,
// contract.Spec.Bind binds nothing), while {} is another. Bytes that are
// not JSON (Execute refuses them first) are returned as they are.
func canonicalArgs(args []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return args
	}
	if v == nil {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return args
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

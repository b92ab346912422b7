// Package outbuf owns Buffer: the output of a process or a log, written
// by one goroutine while a test reads it from another. It never parses
// what it holds.
package outbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer under a mutex: Write and String may be called
// at the same time. The zero Buffer is empty and ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

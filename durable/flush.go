package durable

import (
	"time"

	"github.com/theus-run/theus/cas"
)

// Flush describes one batch the journal wrote: Commits in one bbolt
// transaction, which took Took (writing its pages, an fsync, its meta
// page and a second fsync) and ended at At. Bytes counts the records it
// put (keys and values, op ids with their results); bbolt writes whole
// pages, so the disk sees more.
type Flush struct {
	Commits int
	Bytes   int64
	Took    time.Duration
	At      time.Time
}

// batchBytes is a batch's Flush.Bytes.
func batchBytes(batch []cas.Commit) int64 {
	var n int64
	for _, c := range batch {
		for _, ch := range c.Changes {
			n += int64(len(ch.Path) + len(ch.Value))
		}
		if c.OpID != "" {
			n += int64(len(c.OpID) + len(c.Result))
		}
	}
	return n
}

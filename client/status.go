package client

import (
	"context"
	"fmt"

	"github.com/theus-run/theus/protocol"
)

// Status is the supervisor's state: the Context's version, counters since
// start, its workers, processes, HEAVY zone and durability. Its JSON form
// is what `theusctl status -o json` prints.
type Status struct {
	Version   uint64   `json:"version"` // the Context's newest version
	Mode      string   `json:"mode"`    // "smart" or "strict"
	Commits   uint64   `json:"commits"`
	Conflicts uint64   `json:"conflicts"`
	Retries   uint64   `json:"retries"`
	VIP       uint64   `json:"vip"` // commits made under a VIP ticket
	Failures  uint64   `json:"failures"`
	Workers   []Worker `json:"workers"`
	Processes []string `json:"processes"`
	Heavy     Heavy    `json:"heavy"`
	// Durability is "sync", "async" or "none"; Durable the newest version
	// on disk, written in Batches fsynced transactions holding Persisted
	// commits; LostTensors the HEAVY paths removed at the last start.
	Durability  string `json:"durability"`
	Durable     uint64 `json:"durable"`
	Persisted   uint64 `json:"persisted"`
	Batches     uint64 `json:"batches"`
	LostTensors int64  `json:"lost_tensors"`
}

// Worker is one worker slot.
type Worker struct {
	Slot      int64  `json:"slot"`
	PID       int64  `json:"pid"`
	State     string `json:"state"` // starting, ready, backoff, stopped
	InFlight  int64  `json:"in_flight"`
	Processed uint64 `json:"processed"`
	Restarts  uint64 `json:"restarts"`
}

// Heavy describes the HEAVY zone, in bytes (all zero when it is off).
type Heavy struct {
	Size        int64 `json:"size"` // the budget, --heavy-size
	SlabSize    int64 `json:"slab_size"`
	Slabs       int64 `json:"slabs"`   // live slabs, one per worker
	Retired     int64 `json:"retired"` // dead workers' slabs still holding tensors
	Held        int64 `json:"held"`    // every slab, live and retired
	InUse       int64 `json:"in_use"`
	Blocks      int64 `json:"blocks"`
	LargestFree int64 `json:"largest_free"` // the largest tensor one worker could write now
	HugeKiB     int64 `json:"huge_kib"`     // how much huge pages back
	InlineMax   int64 `json:"inline_max"`   // tensors up to this size travel inline
}

// Status returns the supervisor's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	m, err := c.roundTrip(ctx, func(id uint64) protocol.Message { return &protocol.Status{ID: id} })
	if err != nil {
		return nil, err
	}
	rep, ok := m.(*protocol.StatusReply)
	if !ok {
		return nil, fmt.Errorf("client: got %s for a status", m.Kind())
	}
	if rep.Err != nil {
		return nil, rep.Err
	}
	st := &Status{
		Version: rep.Version, Mode: rep.Mode, Commits: rep.Commits, Conflicts: rep.Conflicts, Retries: rep.Retries,
		VIP: rep.VIP, Failures: rep.Failures, Workers: make([]Worker, 0, len(rep.Workers)), Processes: rep.Processes,
		Durability: rep.Durability, Durable: rep.Durable, Persisted: rep.Persisted, Batches: rep.Batches, LostTensors: rep.LostTensors,
		Heavy: Heavy(rep.Heavy),
	}
	for _, w := range rep.Workers {
		st.Workers = append(st.Workers, Worker(w))
	}
	return st, nil
}

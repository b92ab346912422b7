package client

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/theus-run/theus/protocol"
)

// Backup asks the supervisor to write a consistent copy of the DATA zone
// to path (made absolute here; the supervisor writes it, on its machine,
// with its permissions) while commits go on. The copy is a state file:
// theus-supervisor --restore starts from it.
func (c *Client) Backup(ctx context.Context, path string) (*BackupInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("client: backup: %w", err)
	}
	m, err := c.roundTrip(ctx, func(id uint64) protocol.Message { return &protocol.Backup{ID: id, Path: abs} })
	if err != nil {
		return nil, err
	}
	rep, ok := m.(*protocol.BackupReply)
	if !ok {
		return nil, fmt.Errorf("client: got %s for a backup", m.Kind())
	}
	if rep.Err != nil {
		return nil, rep.Err
	}
	return &BackupInfo{Version: rep.Version, Paths: rep.Paths, OpIDs: rep.OpIDs, Bytes: rep.Bytes, File: abs}, nil
}

// BackupInfo describes a backup the supervisor wrote.
type BackupInfo struct {
	Version uint64 `json:"version"` // every commit up to it, nothing after
	Paths   int64  `json:"paths"`
	OpIDs   int64  `json:"op_ids"` // op ids of the idempotency window it keeps
	Bytes   int64  `json:"bytes"`
	File    string `json:"file"` // the absolute path written
}

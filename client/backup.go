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
func (c *Client) Backup(ctx context.Context, path string) (*protocol.BackupReply, error) {
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
	return rep, nil
}

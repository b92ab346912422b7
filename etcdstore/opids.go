package etcdstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultOpIDRetention is how long an op id is kept at least, when
// Config.OpIDRetention is zero.
const DefaultOpIDRetention = 24 * time.Hour

// opSlices is the number of leases an op id's retention is cut into: an
// op id lives between the retention and 1/opSlices more.
const opSlices = 8

// opLeases hands out the lease an op id's key is put on, so that etcd
// deletes the key once the op id is old enough: one lease per slice of
// time (retention/opSlices), granted with a TTL of the retention plus one
// slice, so an op id committed at any time of its slice is kept at least
// the retention. A lease is one Grant per slice, not per commit; nothing
// keeps it alive.
type opLeases struct {
	retention time.Duration // < 0: op ids are kept for ever, on no lease
	slice     time.Duration

	mu    sync.Mutex
	id    clientv3.LeaseID
	until time.Time // when id stops being handed out
}

func newOpLeases(retention time.Duration) opLeases {
	if retention == 0 {
		retention = DefaultOpIDRetention
	}
	return opLeases{retention: retention, slice: max(retention/opSlices, time.Second)}
}

// lease returns the lease for an op id committed now (0: none).
func (o *opLeases) lease(ctx context.Context, c *clientv3.Client) (clientv3.LeaseID, error) {
	if o.retention < 0 {
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if o.id != 0 && now.Before(o.until) {
		return o.id, nil
	}
	ttl := (o.retention + o.slice + time.Second - 1) / time.Second
	r, err := c.Grant(ctx, int64(ttl))
	if err != nil {
		return 0, &UnavailableError{Op: "op id lease", Err: err}
	}
	o.id, o.until = r.ID, now.Add(o.slice)
	return o.id, nil
}

// lost forgets id, which etcd no longer knows (revoked, or expired
// after a clock jump): the next lease call grants another.
func (o *opLeases) lost(id clientv3.LeaseID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.id == id {
		o.id = 0
	}
}

// leaseLost reports whether a Txn was refused, applying nothing, because
// a lease it puts a key on does not exist.
func leaseLost(err error) bool { return errors.Is(err, rpctypes.ErrLeaseNotFound) }

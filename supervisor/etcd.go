package supervisor

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/protocol"
)

// EtcdConfig keeps the DATA zone in an etcd cluster (package etcdstore)
// instead of this process's memory and state file: every supervisor on
// the same cluster and Prefix shares one Context (docs/DISTRIBUTED.md).
// Endpoints or Client is required.
type EtcdConfig struct {
	Endpoints []string
	// Prefix is the Context's key prefix; default etcdstore.DefaultPrefix.
	Prefix string
	// CA, Cert and Key are PEM files: CA verifies the members (with none
	// given, plain connections), Cert and Key (both or neither) are this
	// supervisor's client certificate.
	CA, Cert, Key string
	// DialTimeout bounds the first connection; default 5s.
	DialTimeout time.Duration
	// MaxTxnOps and MaxRequestBytes are the cluster's --max-txn-ops and
	// --max-request-bytes (etcd's defaults when zero).
	MaxTxnOps, MaxRequestBytes int
	// TicketTTL is how long a VIP ticket of this supervisor outlives it,
	// should it die; default etcdstore.DefaultTicketTTL.
	TicketTTL time.Duration
	// OpIDRetention is how long a committed op id is kept at least;
	// default etcdstore.DefaultOpIDRetention, negative for ever.
	OpIDRetention time.Duration
	// Client, when set, is used instead of dialing Endpoints; the caller
	// owns it and closes it after Shutdown (tests close it before, to
	// cut the supervisor off from etcd).
	Client *clientv3.Client
}

// DefaultEtcdOpIDRetention is EtcdConfig.OpIDRetention's default.
const DefaultEtcdOpIDRetention = etcdstore.DefaultOpIDRetention

// etcdBackend is the supervisor's connection to its etcd Context.
type etcdBackend struct {
	client *clientv3.Client
	owned  bool // dialed here: closed at Shutdown
	store  *etcdstore.Store
	// host names this supervisor's HEAVY arena in the descriptors it
	// commits (etcd_heavy.go).
	host string
	// stopWatch ends the watches (signals, etcd_signals.go; replaced
	// tensors, etcd_heavy.go), watches waits for them.
	stopWatch context.CancelFunc
	watches   sync.WaitGroup
}

// checkEtcd refuses, before anything starts, what the etcd store does
// not carry: it would be silently local to one supervisor otherwise.
func checkEtcd(cfg Config) error {
	e := cfg.Etcd
	if e == nil {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("supervisor: etcd store: "+format, args...)
	}
	switch {
	case e.Client == nil && len(e.Endpoints) == 0:
		return bad("no endpoints")
	case cfg.StateDir != "" || cfg.Restore != "":
		return bad("a commit is durable once etcd has it (a quorum of members logged it): no state directory, durability mode or backup to restore applies")
	case cfg.Audit != "":
		return bad("audit counters are not kept in etcd yet: no audit recipe")
	case (e.Cert == "") != (e.Key == ""):
		return bad("a client certificate needs both its certificate and its key")
	}
	return nil
}

// openEtcd connects to the cluster (or takes Config.Etcd.Client) and
// makes the runner commit through it. Its VIP tickets are the store's:
// keys in etcd on this supervisor's lease, honoured by every supervisor,
// ended by the lease if this one dies.
func (s *Supervisor) openEtcd() error {
	e := s.cfg.Etcd
	host, err := newHostID()
	if err != nil {
		return err
	}
	b := &etcdBackend{client: e.Client, host: host}
	if b.client == nil {
		tc, err := etcdTLS(e)
		if err != nil {
			return err
		}
		b.client, err = clientv3.New(clientv3.Config{
			Endpoints: e.Endpoints, DialTimeout: cmp.Or(e.DialTimeout, 5*time.Second), TLS: tc, Logger: zap.NewNop(),
		})
		if err != nil {
			return fmt.Errorf("supervisor: etcd store: %w", err)
		}
		b.owned = true
	}
	st, err := etcdstore.New(etcdstore.Config{
		Client: b.client, Prefix: e.Prefix, MaxTxnOps: e.MaxTxnOps, MaxRequestBytes: e.MaxRequestBytes, TicketTTL: e.TicketTTL, OpIDRetention: e.OpIDRetention,
		Committed: s.meters.committed, // the commit log and per-commit histograms, as on one machine
		Trace:     s.meters.ticket,    // stats' VIP ticket counters
	})
	if err != nil {
		b.close()
		return fmt.Errorf("supervisor: %w", err)
	}
	b.store = st
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(e.DialTimeout, 5*time.Second))
	defer cancel()
	from, err := st.Version(ctx) // fail the start, not the first execute
	if err != nil {
		b.close()
		return fmt.Errorf("supervisor: %w", err)
	}
	s.etcd = b
	watch, stop := context.WithCancel(context.Background())
	b.stopWatch = stop
	s.watchSignals(watch, from)
	s.watchTensors(watch, from)
	s.runner = &cas.Runner{Engine: st, Mode: s.cfg.Mode, VIPAfter: s.cfg.VIPAfter}
	return nil
}

// etcdTLS builds the client's TLS configuration from PEM files; nil when
// none is given.
func etcdTLS(e *EtcdConfig) (*tls.Config, error) {
	if e.CA == "" && e.Cert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CA != "" {
		pem, err := os.ReadFile(e.CA)
		if err != nil {
			return nil, fmt.Errorf("supervisor: etcd CA: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("supervisor: etcd CA %s: no PEM certificate in it", e.CA)
		}
	}
	if e.Cert != "" {
		c, err := tls.LoadX509KeyPair(e.Cert, e.Key)
		if err != nil {
			return nil, fmt.Errorf("supervisor: etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// close ends the store's tickets, and closes the client if it was
// dialed here.
func (b *etcdBackend) close() {
	if b == nil {
		return
	}
	b.stopWatches()
	if b.store != nil {
		b.store.Close()
	}
	if b.owned {
		b.client.Close()
	}
}

// view returns a snapshot of the newest version that reads at least the
// values at or under paths: the process's store's, or a read of etcd.
// The caller releases it.
func (s *Supervisor) view(ctx context.Context, paths ...contract.Path) (*cas.Snapshot, error) {
	if s.etcd == nil {
		return s.store.Snapshot(), nil
	}
	return s.etcd.store.View(ctx, paths)
}

// statusStore fills a Status reply's version and durability: an etcd
// commit is durable once acknowledged, so Durable is the version.
func (s *Supervisor) statusStore(rep *protocol.StatusReply) {
	if s.etcd == nil {
		rep.Version = uint64(s.store.Version())
		return
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.DefaultTimeout)
	defer cancel()
	v, err := s.etcd.store.Version(ctx)
	if err != nil {
		rep.Err = s.wireError(err)
	}
	rep.Version, rep.Durable, rep.Durability = uint64(v), uint64(v), "etcd"
}

// statsVersion is Stats's version: the store's, or etcd's newest
// revision, read with a short timeout (0 when etcd does not answer).
func (s *Supervisor) statsVersion() uint64 {
	if s.etcd == nil {
		return uint64(s.store.Version())
	}
	ctx, cancel := context.WithTimeout(s.base, statsTimeout)
	defer cancel()
	v, err := s.etcd.store.Version(ctx)
	if err != nil {
		return 0
	}
	return uint64(v)
}

// statsTimeout bounds Stats's read of etcd's version: a stats call
// answers even when etcd does not.
const statsTimeout = time.Second

// errEtcdLocal answers what stays local to one supervisor and so is
// refused with an etcd store.
func errEtcdLocal(what string) *protocol.Error {
	return protocol.Errorf(protocol.CodeBadRequest, "%s is not available with the etcd store yet (docs/DISTRIBUTED.md)", what)
}

// ackInputs are the inputs outbox.ack reads: none from a local store (its
// snapshot reads everything), the messages from etcd (a view reads only
// what it names).
func (s *Supervisor) ackInputs(paths []contract.Path) []contract.Path {
	if s.etcd == nil {
		return nil
	}
	return paths
}

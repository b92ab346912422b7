package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/theus-run/theus/supervisor"
)

// etcdFlags are the flags that choose where the DATA zone lives.
type etcdFlags struct {
	store     string
	endpoints []string
	prefix    string
	ca        string
	cert      string
	key       string
	opids     time.Duration
}

func (e *etcdFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&e.store, "store", "bbolt", "where the DATA zone lives: bbolt (this process, its state file in --state-dir) or etcd (an etcd cluster that several supervisors share; docs/DISTRIBUTED.md)")
	fl.StringSliceVar(&e.endpoints, "etcd-endpoints", nil, "with --store etcd: the members' client URLs, comma-separated")
	fl.StringVar(&e.prefix, "etcd-prefix", "", "with --store etcd: the Context's key prefix (default theus/); supervisors on one prefix share one Context")
	fl.StringVar(&e.ca, "etcd-tls-ca", "", "with --store etcd: PEM file of the CA that signed the members' certificates (TLS)")
	fl.StringVar(&e.cert, "etcd-tls-cert", "", "with --store etcd: PEM file of this supervisor's client certificate (with --etcd-tls-key)")
	fl.StringVar(&e.key, "etcd-tls-key", "", "with --store etcd: PEM file of the client certificate's key")
	fl.DurationVar(&e.opids, "etcd-opid-retention", supervisor.DefaultEtcdOpIDRetention, "with --store etcd: how long a committed op id is kept at least (a repeat within it returns the first outcome); etcd deletes it after, through a lease; negative keeps op ids for ever")
}

// storeConfig applies --store to cfg. With etcd, a commit is durable once
// etcd acknowledges it: --state-dir, --durability and --restore are the
// bbolt store's and are refused when given; the HEAVY arena (host-local
// memory) is off unless --heavy-size is given (its tensors are read only
// through the supervisor that holds them: remote_tensor elsewhere), and
// --audit and --demo are refused (their records are not kept in etcd
// yet). --flux works: every supervisor loads the same directory, and each
// run is owned by one of them at a time. changed reports whether a flag
// was given.
func (f *flags) storeConfig(cfg *supervisor.Config, changed func(string) bool) error {
	e := f.etcd
	switch e.store {
	case "bbolt":
		for _, n := range []string{"etcd-endpoints", "etcd-prefix", "etcd-tls-ca", "etcd-tls-cert", "etcd-tls-key", "etcd-opid-retention"} {
			if changed(n) {
				return fmt.Errorf("--%s: needs --store etcd", n)
			}
		}
		return nil
	case "etcd":
	default:
		return fmt.Errorf("--store %q: want bbolt or etcd", e.store)
	}
	for _, n := range []string{"state-dir", "durability", "restore"} {
		if changed(n) {
			return fmt.Errorf("--%s: applies to --store bbolt only; with etcd a commit is durable once etcd acknowledges it (a quorum of members logged it)", n)
		}
	}
	for _, n := range []string{"audit", "demo"} {
		if changed(n) {
			return fmt.Errorf("--%s: not available with --store etcd yet (docs/DISTRIBUTED.md)", n)
		}
	}
	if len(e.endpoints) == 0 {
		return errors.New("--store etcd: give the members' client URLs with --etcd-endpoints")
	}
	if (e.cert == "") != (e.key == "") {
		return errors.New("--etcd-tls-cert and --etcd-tls-key: give both or neither")
	}
	cfg.StateDir, cfg.Restore = "", ""
	if !changed("heavy-size") {
		cfg.HeavySize = 0 // opt-in: see docs/HEAVY.md, several supervisors
	}
	if e.opids == 0 {
		return errors.New("--etcd-opid-retention 0: give a duration (at least 1s), or a negative one to keep op ids for ever")
	}
	cfg.Etcd = &supervisor.EtcdConfig{Endpoints: e.endpoints, Prefix: e.prefix, CA: e.ca, Cert: e.cert, Key: e.key, OpIDRetention: e.opids}
	f.durability = "etcd"
	return nil
}

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdTarget runs the workloads on etcd the way an etcd user would: read
// the keys, then a Txn that writes only if their mod revisions are
// unchanged (CAS), retried when it is not. Keys live under
// "theus-bench/". etcd has no no-op request, so it runs no noop workload.
type etcdTarget struct{ cs []*clientv3.Client }

const etcdPrefix = "theus-bench/"

func dialEtcd(endpoint string, clients int) (*etcdTarget, error) {
	t := &etcdTarget{}
	for range clients {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.close()
			return nil, fmt.Errorf("etcd at %s: %w", endpoint, err)
		}
		t.cs = append(t.cs, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := t.cs[0].Get(ctx, etcdPrefix+"probe"); err != nil {
		t.close()
		return nil, fmt.Errorf("etcd at %s: %w", endpoint, err)
	}
	return t, nil
}

func (e *etcdTarget) supports(w string) bool {
	return w == "counter" || w == "counter-spread" || w == "bank"
}

func (e *etcdTarget) version(ctx context.Context) string {
	st, err := e.cs[0].Status(ctx, e.cs[0].Endpoints()[0])
	if err != nil {
		return "etcd (version unknown)"
	}
	return "etcd " + st.Version
}

func etcdCounter(k string) string { return etcdPrefix + "c/" + k }
func etcdAccount(a string) string { return etcdPrefix + "a/" + a }

func (e *etcdTarget) setup(ctx context.Context, w *workload) error {
	if w.usesAccounts() {
		for i := range w.accounts {
			if _, err := e.cs[0].Put(ctx, etcdAccount(w.account(i)), strconv.FormatInt(w.balance, 10)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *etcdTarget) do(ctx context.Context, caller int, q request) (outcome, error) {
	c := e.cs[caller%len(e.cs)]
	var out outcome
	for range maxTxRetries {
		var ok bool
		var err error
		switch q.op {
		case "add":
			ok, err = e.add(ctx, c, etcdCounter(q.key))
		case "transfer":
			ok, err = e.transfer(ctx, c, etcdAccount(q.from), etcdAccount(q.to), q.amount)
		default:
			return out, fmt.Errorf("etcd: no request %q", q.op)
		}
		if err != nil || ok {
			return out, err
		}
		out.retries++
	}
	return out, fmt.Errorf("etcd: gave up after %d lost transactions", maxTxRetries)
}

// get returns a key's integer value and mod revision (0 if absent).
func get(ctx context.Context, c *clientv3.Client, key string) (int64, int64, error) {
	r, err := c.Get(ctx, key)
	if err != nil || len(r.Kvs) == 0 {
		return 0, 0, err
	}
	n, err := strconv.ParseInt(string(r.Kvs[0].Value), 10, 64)
	return n, r.Kvs[0].ModRevision, err
}

func (e *etcdTarget) add(ctx context.Context, c *clientv3.Client, key string) (bool, error) {
	n, rev, err := get(ctx, c, key)
	if err != nil {
		return false, err
	}
	r, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, strconv.FormatInt(n+1, 10))).Commit()
	if err != nil {
		return false, err
	}
	return r.Succeeded, nil
}

func (e *etcdTarget) transfer(ctx context.Context, c *clientv3.Client, from, to string, amount int64) (bool, error) {
	a, ra, err := get(ctx, c, from)
	if err != nil {
		return false, err
	}
	b, rb, err := get(ctx, c, to)
	if err != nil {
		return false, err
	}
	if a < amount {
		return false, errInsufficient
	}
	r, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(from), "=", ra), clientv3.Compare(clientv3.ModRevision(to), "=", rb)).
		Then(clientv3.OpPut(from, strconv.FormatInt(a-amount, 10)), clientv3.OpPut(to, strconv.FormatInt(b+amount, 10))).Commit()
	if err != nil {
		return false, err
	}
	return r.Succeeded, nil
}

func (e *etcdTarget) read(ctx context.Context, w *workload) (state, error) {
	st := state{counters: map[string]int64{}, balances: map[string]int64{}}
	for _, q := range []struct {
		prefix string
		into   map[string]int64
	}{{etcdCounter(""), st.counters}, {etcdAccount(w.prefix), st.balances}} {
		r, err := e.cs[0].Get(ctx, q.prefix, clientv3.WithPrefix())
		if err != nil {
			return st, err
		}
		for _, kv := range r.Kvs {
			n, err := strconv.ParseInt(string(kv.Value), 10, 64)
			if err != nil {
				continue
			}
			name := strings.TrimPrefix(string(kv.Key), etcdCounter(""))
			if q.prefix != etcdCounter("") {
				name = strings.TrimPrefix(string(kv.Key), etcdAccount(""))
			}
			q.into[name] = n
		}
	}
	return st, nil
}

func (e *etcdTarget) close() error {
	for _, c := range e.cs {
		c.Close()
	}
	return nil
}

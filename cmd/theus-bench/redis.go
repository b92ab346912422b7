package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisTarget runs the workloads on Redis the way a Redis user would:
// optimistic transactions with WATCH/MULTI/EXEC, retried when EXEC finds
// a watched key changed. Keys live under "theus-bench:".
type redisTarget struct{ c *redis.Client }

const redisPrefix = "theus-bench:"

func dialRedis(addr string, callers int) (*redisTarget, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: callers + 2, MinIdleConns: callers})
	if err := c.Ping(context.Background()).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis at %s: %w", addr, err)
	}
	return &redisTarget{c: c}, nil
}

func (r *redisTarget) supports(w string) bool {
	return w == "noop" || w == "counter" || w == "counter-spread" || w == "bank"
}

func (r *redisTarget) version(ctx context.Context) string {
	info, err := r.c.InfoMap(ctx, "server").Result()
	if err != nil {
		return "redis (version unknown)"
	}
	return "redis " + info["Server"]["redis_version"]
}

func counterKey(k string) string { return redisPrefix + "c:" + k }
func accountKey(a string) string { return redisPrefix + "a:" + a }

func (r *redisTarget) setup(ctx context.Context, w *workload) error {
	if w.usesAccounts() {
		for i := range w.accounts {
			if err := r.c.Set(ctx, accountKey(w.account(i)), w.balance, 0).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxTxRetries bounds a transaction that keeps losing (Redis has no
// VIP ticket): an error after that many.
const maxTxRetries = 10000

func (r *redisTarget) do(ctx context.Context, _ int, q request) (outcome, error) {
	switch q.op {
	case "noop":
		return outcome{}, r.c.Ping(ctx).Err()
	case "add":
		key := counterKey(q.key)
		return r.tx(ctx, func(tx *redis.Tx) error {
			n, err := tx.Get(ctx, key).Int64()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, n+1, 0)
				return nil
			})
			return err
		}, key)
	case "transfer":
		from, to := accountKey(q.from), accountKey(q.to)
		return r.tx(ctx, func(tx *redis.Tx) error {
			a, err := tx.Get(ctx, from).Int64()
			if err != nil {
				return err
			}
			b, err := tx.Get(ctx, to).Int64()
			if err != nil {
				return err
			}
			if a < q.amount {
				return errInsufficient
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, from, a-q.amount, 0)
				p.Set(ctx, to, b+q.amount, 0)
				return nil
			})
			return err
		}, from, to)
	}
	return outcome{}, fmt.Errorf("redis: no request %q", q.op)
}

func (r *redisTarget) tx(ctx context.Context, f func(*redis.Tx) error, keys ...string) (outcome, error) {
	var out outcome
	for range maxTxRetries {
		err := r.c.Watch(ctx, f, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return out, err
		}
		out.retries++
	}
	return out, fmt.Errorf("redis: gave up after %d lost transactions", maxTxRetries)
}

func (r *redisTarget) read(ctx context.Context, w *workload) (state, error) {
	st := state{counters: map[string]int64{}, balances: map[string]int64{}}
	for _, q := range []struct {
		pattern, prefix string
		into            map[string]int64
	}{{counterKey("*"), counterKey(""), st.counters}, {accountKey(w.prefix + "*"), accountKey(""), st.balances}} {
		keys, err := r.c.Keys(ctx, q.pattern).Result()
		if err != nil {
			return st, err
		}
		for _, k := range keys {
			v, err := r.c.Get(ctx, k).Result()
			if err != nil {
				return st, err
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				continue
			}
			q.into[strings.TrimPrefix(k, q.prefix)] = n
		}
	}
	return st, nil
}

func (r *redisTarget) close() error { return r.c.Close() }

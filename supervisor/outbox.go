package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// The outbox (docs/OUTBOX.md). A process's emits become appends to the
// LOG-like root outboxRoot.<topic>, System writes of the same commit as
// its delta: a message exists exactly when its commit does. Each is an
// entry outboxRoot.<topic>.<seq>, its id "<topic>.<seq>". outbox.pull
// hands out the oldest ones not leased and leases them; outbox.ack
// deletes them in one commit. Leases live in memory only.
const outboxRoot = "global.internal_outbox"

// Pull and ack bounds.
const (
	defaultPullMax = 100
	maxPullMax     = 10000
	defaultLease   = 30 * time.Second
	maxLease       = 24 * time.Hour
	maxAckIDs      = 10000
)

// outbox holds the leases of pulled messages: a message leased until a
// time in the future is not handed out again before then.
type outbox struct {
	mu     sync.Mutex // orders pulls with acks: a pull never sees half of one
	now    func() time.Time
	leases map[contract.Path]time.Time // message path -> lease end
}

// startOutbox registers outbox.pull and outbox.ack.
func (s *Supervisor) startOutbox() {
	s.outbox = &outbox{now: time.Now, leases: map[contract.Path]time.Time{}}
	s.registerMethod(protocol.MethodOutboxPull, s.outboxPull)
	s.registerMethod(protocol.MethodOutboxAck, s.outboxAck)
}

// outboxDelta turns an attempt's emits into the appends that commit them
// with its delta. A topic the contract refuses (a PURE process, a topic
// that is not one DATA-zone segment) or a payload that is not JSON fails
// the attempt: nothing of it commits.
func outboxDelta(process string, c contract.Contract, emits []protocol.Emit) (cas.Delta, error) {
	if len(emits) > protocol.MaxEmits {
		return nil, protocol.Errorf(protocol.CodeProcessFailed, "process %q: %d outbox messages, over %d", process, len(emits), protocol.MaxEmits)
	}
	var d cas.Delta
	for i, e := range emits {
		if err := c.CheckEmit(e.Topic); err != nil {
			var v *contract.Violation
			if errors.As(err, &v) {
				return nil, err
			}
			return nil, protocol.Errorf(protocol.CodeProcessFailed, "process %q: outbox message %d: %v", process, i, err)
		}
		if !json.Valid(e.Payload) {
			return nil, protocol.Errorf(protocol.CodeProcessFailed, "process %q: outbox message %d (topic %s): its payload is not JSON: %v", process, i, e.Topic, whyNotJSON(e.Payload))
		}
		d.Append(topicRoot(e.Topic), e.Payload)
	}
	return d, nil
}

// topicRoot is where a valid topic's messages live.
func topicRoot(topic string) contract.Path {
	return contract.Path(outboxRoot + "." + topic)
}

// Message is one outbox message as outbox.pull returns it.
type Message struct {
	ID      string          `json:"id"` // "<topic>.<seq>", stable: a consumer deduplicates on it
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
	Version uint64          `json:"version"` // the commit that emitted it
}

type pullRequest struct {
	Topic   string `json:"topic"`
	Max     int    `json:"max"`      // default defaultPullMax, at most maxPullMax
	LeaseMS int64  `json:"lease_ms"` // default defaultLease
}

type pullReply struct {
	Messages []Message `json:"messages"`
}

// outboxPull returns the oldest messages of a topic that no lease holds,
// and leases them.
func (s *Supervisor) outboxPull(ctx context.Context, body []byte) (any, error) {
	var req pullRequest
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	if err := contract.CheckTopic(req.Topic); err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "outbox.pull: %v", err)
	}
	switch {
	case req.Max < 0:
		return nil, protocol.Errorf(protocol.CodeBadRequest, "outbox.pull: max %d: want 0 (the default, %d) or more", req.Max, defaultPullMax)
	case req.Max == 0:
		req.Max = defaultPullMax
	case req.Max > maxPullMax:
		req.Max = maxPullMax
	}
	lease := defaultLease
	switch {
	case req.LeaseMS < 0 || req.LeaseMS > maxLease.Milliseconds():
		return nil, protocol.Errorf(protocol.CodeBadRequest, "outbox.pull: lease_ms %d: want 0 (the default, %d) to %d", req.LeaseMS, defaultLease.Milliseconds(), maxLease.Milliseconds())
	case req.LeaseMS > 0:
		lease = time.Duration(req.LeaseMS) * time.Millisecond
	}
	if err := s.journalErr(); err != nil {
		return nil, err
	}
	o := s.outbox
	o.mu.Lock()
	snap, err := s.view(ctx, topicRoot(req.Topic))
	if err != nil {
		o.mu.Unlock()
		return nil, fmt.Errorf("outbox.pull: %w", err)
	}
	now := o.now()
	rep := pullReply{Messages: []Message{}}
	for _, e := range snap.Subtree(topicRoot(req.Topic)) {
		if until, ok := o.leases[e.Path]; ok {
			if now.Before(until) {
				continue
			}
			delete(o.leases, e.Path)
		}
		seq, ok := entrySeq(req.Topic, e.Path)
		if !ok {
			continue // not a message: nothing but appends is written here
		}
		o.leases[e.Path] = now.Add(lease)
		rep.Messages = append(rep.Messages, Message{ID: req.Topic + "." + strconv.FormatUint(seq, 10), Topic: req.Topic, Payload: e.Value, Version: uint64(e.Version)})
		if len(rep.Messages) == req.Max {
			break
		}
	}
	o.mu.Unlock()
	v := snap.Version()
	snap.Release()
	if err := s.durableAt(ctx, v); err != nil { // never hand out what a crash could take back
		return nil, err
	}
	return rep, nil
}

// entrySeq returns the entry number of a message's path.
func entrySeq(topic string, p contract.Path) (uint64, bool) {
	rest, ok := strings.CutPrefix(string(p), string(topicRoot(topic))+".")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil
}

type ackRequest struct {
	IDs []string `json:"ids"`
}

type ackReply struct {
	Acked   int      `json:"acked"`
	Unknown []string `json:"unknown"` // ids with no message (acked before, or never emitted)
}

// outboxAck deletes the named messages in one commit, and replies once
// it is durable.
func (s *Supervisor) outboxAck(ctx context.Context, body []byte) (any, error) {
	var req ackRequest
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	if len(req.IDs) == 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "outbox.ack: no ids")
	}
	if len(req.IDs) > maxAckIDs {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "outbox.ack: %d ids, over %d", len(req.IDs), maxAckIDs)
	}
	ids := make([]string, 0, len(req.IDs))
	paths := make([]contract.Path, 0, len(req.IDs))
	seen := make(map[contract.Path]bool, len(req.IDs))
	for _, id := range req.IDs {
		p, err := messagePath(id)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "outbox.ack: %v", err)
		}
		if !seen[p] {
			seen[p] = true
			ids, paths = append(ids, id), append(paths, p)
		}
	}
	if err := s.journalErr(); err != nil {
		return nil, err
	}
	rep := ackReply{Unknown: []string{}}
	o := s.outbox
	o.mu.Lock()
	r, err := s.runner.Execute(ctx, cas.Invocation{
		Contract: contract.Contract{Name: protocol.MethodOutboxAck, Inputs: s.ackInputs(paths)},
		Owner:    protocol.MethodOutboxAck,
		Run: func(_ context.Context, snap *cas.Snapshot, _ int) (cas.Outcome, error) {
			var out cas.Outcome
			rep = ackReply{Unknown: []string{}}
			for i, p := range paths {
				if _, ok := snap.Get(p); ok {
					out.System.Delete(p)
					rep.Acked++
				} else {
					rep.Unknown = append(rep.Unknown, ids[i])
				}
			}
			return out, nil
		},
	})
	if err == nil {
		for _, p := range paths {
			delete(o.leases, p)
		}
	}
	o.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("outbox.ack: %w", err)
	}
	if err := s.durableAt(ctx, r.Version); err != nil {
		return nil, err
	}
	return rep, nil
}

// messagePath parses a message id, "<topic>.<seq>" with seq in canonical
// decimal, into the path of its entry.
func messagePath(id string) (contract.Path, error) {
	topic, seq, ok := strings.Cut(id, ".")
	if !ok {
		return "", fmt.Errorf("id %q: want <topic>.<seq>", id)
	}
	if err := contract.CheckTopic(topic); err != nil {
		return "", fmt.Errorf("id %q: %w", id, err)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != seq {
		return "", fmt.Errorf("id %q: %q is not an entry number", id, seq)
	}
	return cas.EntryPath(topicRoot(topic), n), nil
}

package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/signal"
)

// signalWrite checks a process's write to a SIGNAL path: a signal is set
// to a JSON value; it is never deleted or appended to (there is nothing
// stored to delete or append to), and never holds a tensor.
func signalWrite(process string, path contract.Path, w protocol.Write) *protocol.Error {
	switch {
	case contract.Op(w.Op) != contract.OpSet:
		return &protocol.Error{Code: protocol.CodeContractViolation, Message: fmt.Sprintf("process %q: %s is a SIGNAL path: a signal is set, never %s (it is not stored)", process, path, contract.Op(w.Op)), Path: w.Path}
	case path.InZone(contract.ZoneHeavy):
		return &protocol.Error{Code: protocol.CodeBadTensor, Message: fmt.Sprintf("process %q: %s is a SIGNAL path: a signal never holds a tensor", process, path), Path: w.Path}
	case !json.Valid(w.Value):
		return &protocol.Error{Code: protocol.CodeProcessFailed, Message: fmt.Sprintf("process %q: the value for %s is not JSON: %v", process, w.Path, whyNotJSON(w.Value)), Path: w.Path}
	}
	return nil
}

// WatchBuffer is how many items a signal.watch subscriber holds before
// its signals are counted as missed (signal.Sub's buffer).
const WatchBuffer = 1024

// newSignalHub makes the Hub that publishes signals once the journal has
// them on disk (at once without a journal).
func newSignalHub(journal *durable.Journal) *signal.Hub {
	cfg := signal.Config{}
	if journal != nil {
		cfg.Wait, cfg.Durable = journal.Wait, journal.Durable
	}
	return signal.New(cfg)
}

// startSignals registers the signal methods and streams.
func (s *Supervisor) startSignals() {
	s.registerMethod(protocol.MethodSignalPublish, s.signalPublish)
	s.registerStream(protocol.StreamSignals, s.signalWatch)
}

// signalPublishBody is signal.publish's body.
type signalPublishBody struct {
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// signalPublish commits a signal from outside (a commit of its own,
// ordered with every other) and replies with its version once durable.
func (s *Supervisor) signalPublish(ctx context.Context, body []byte) (any, error) {
	var in signalPublishBody
	if err := decodeBody(body, &in); err != nil {
		return nil, err
	}
	p, err := signalPath(in.Path)
	if err != nil {
		return nil, err
	}
	value := in.Value
	if len(value) == 0 {
		value = json.RawMessage("null")
	}
	if len(value) > cas.MaxValueLen {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("signal.publish: the value is %d bytes, over %d", len(value), cas.MaxValueLen), Path: in.Path}
	}
	if err := s.journalErr(); err != nil {
		return nil, err
	}
	c, err := contract.New(protocol.MethodSignalPublish, nil, []contract.Path{p}, contract.Effect)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "signal.publish: %v", err)
	}
	var sig cas.Delta
	sig.Set(p, value)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DefaultTimeout)
	defer cancel()
	r, err := s.runner.Execute(ctx, cas.Invocation{
		Contract: c,
		Owner:    "signal-" + strconv.FormatUint(s.seq.Add(1), 10),
		Run: func(context.Context, *cas.Snapshot, int) (cas.Outcome, error) {
			return cas.Outcome{Signals: sig}, nil
		},
	})
	if err != nil {
		s.failures.Add(1)
		return nil, fmt.Errorf("signal.publish %s: %w", in.Path, err)
	}
	if err := s.durableAt(ctx, r.Version); err != nil {
		s.failures.Add(1)
		return nil, err
	}
	s.commits.Add(1)
	return struct {
		Version uint64 `json:"version"`
	}{uint64(r.Version)}, nil
}

// signalPath parses a path that must be in the SIGNAL zone.
func signalPath(path string) (contract.Path, error) {
	if path == "" {
		return "", protocol.Errorf(protocol.CodeBadRequest, "signal.publish: a path is required")
	}
	p, err := contract.Parse(path)
	if err != nil {
		return "", &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error(), Path: path}
	}
	if !p.InZone(contract.ZoneSignal) {
		return "", &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("signal.publish: %s is not in the SIGNAL zone (no segment sig_* or cmd_*)", path), Path: path}
	}
	return p, nil
}

// signalWatchBody is signal.watch's body.
type signalWatchBody struct {
	Prefix string `json:"prefix"`
}

// The items of signal.watch, as JSON: one when the subscription is in
// place, then signals and lagged counts.
type (
	watchReady struct {
		Watching string `json:"watching"`
	}
	watchSignal struct {
		Version uint64          `json:"version"`
		Path    string          `json:"path"`
		Value   json.RawMessage `json:"value"`
	}
	watchLagged struct {
		Lagged uint64 `json:"lagged"`
	}
)

// signalWatch streams the signals at or under a prefix ("" for all).
func (s *Supervisor) signalWatch(ctx context.Context, body []byte, send func(...any) error) error {
	var in signalWatchBody
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	var prefix contract.Path
	if in.Prefix != "" {
		p, err := contract.Parse(in.Prefix)
		if err != nil {
			return &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error(), Path: in.Prefix}
		}
		prefix = p
	}
	sub := s.signals.Subscribe(prefix, WatchBuffer)
	defer sub.Close()
	if err := send(watchReady{Watching: in.Prefix}); err != nil {
		return err
	}
	var items []signal.Item
	var out []any
	for {
		select {
		case <-sub.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
		var ok bool
		items, ok = sub.Take(items)
		// Everything the watcher holds goes in one write.
		out = out[:0]
		for _, it := range items {
			if it.Lagged != 0 {
				out = append(out, watchLagged{Lagged: it.Lagged})
			} else {
				out = append(out, watchSignal{Version: it.Version, Path: it.Path, Value: it.Value})
			}
		}
		if len(out) > 0 {
			if err := send(out...); err != nil {
				return err
			}
		}
		if !ok { // the hub closed: the supervisor is stopping
			return protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")
		}
	}
}

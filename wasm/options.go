package wasm

import (
	"encoding/json"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// The options objects of the JavaScript API, as JSON. Unknown keys are
// refused (a typo must not be a silent default).
type (
	contextOptions struct {
		Mode      string          `json:"mode"` // smart (default), strict or training
		VIPAfter  int             `json:"vip_after"`
		TimeoutMS int64           `json:"timeout_ms"`
		Restore   json.RawMessage `json:"restore"` // a snapshot()
	}
	execOptions struct {
		ID        string `json:"id"`
		TimeoutMS int64  `json:"timeout_ms"`
	}
	fluxOptions struct {
		Args      json.RawMessage `json:"args"`
		ID        string          `json:"id"`
		MaxOps    int             `json:"max_ops"`
		TimeoutMS int64           `json:"timeout_ms"`
		Detach    bool            `json:"detach"`
		File      string          `json:"file"`
	}
)

// options decodes an options object (empty: none) into v.
func options(what string, b []byte, v any) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if err := strictJSON(b, v); err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "%s options: %v", what, err)
	}
	return nil
}

func millis(what string, ms int64) (time.Duration, error) {
	if ms < 0 || ms > protocol.MaxTimeout.Milliseconds() {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "%s: timeout_ms %d: want 0 (the default) to %d", what, ms, protocol.MaxTimeout.Milliseconds())
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// contextConfig is newContext's options as a Config.
func contextConfig(b []byte) (Config, error) {
	var o contextOptions
	if err := options("newContext", b, &o); err != nil {
		return Config{}, err
	}
	cfg := Config{VIPAfter: o.VIPAfter}
	switch o.Mode {
	case "", "smart":
		cfg.Mode = cas.Smart
	case "strict":
		cfg.Mode = cas.Strict
	case "training":
		cfg.Mode = cas.Training
	default:
		return Config{}, protocol.Errorf(protocol.CodeBadRequest, "newContext: mode %q: want smart, strict or training", o.Mode)
	}
	var err error
	if cfg.Timeout, err = millis("newContext", o.TimeoutMS); err != nil {
		return Config{}, err
	}
	if len(o.Restore) > 0 && string(o.Restore) != "null" {
		s, err := ParseSnapshot(o.Restore)
		if err != nil {
			return Config{}, err
		}
		st, err := s.State()
		if err != nil {
			return Config{}, err
		}
		cfg.Restore = &st
	}
	return cfg, nil
}

// execRequest is exec's arguments as a Request.
func execRequest(process string, args, opts []byte) (Request, error) {
	var o execOptions
	if err := options("exec", opts, &o); err != nil {
		return Request{}, err
	}
	t, err := millis("exec", o.TimeoutMS)
	if err != nil {
		return Request{}, err
	}
	return Request{Process: process, Args: args, OpID: o.ID, Timeout: t}, nil
}

// runRequest is flux's arguments as a flux.RunRequest.
func runRequest(source string, opts []byte) (flux.RunRequest, error) {
	var o fluxOptions
	if err := options("flux", opts, &o); err != nil {
		return flux.RunRequest{}, err
	}
	return flux.RunRequest{File: o.File, Source: source, Args: o.Args, ID: o.ID, MaxOps: o.MaxOps, TimeoutMS: o.TimeoutMS, Detach: o.Detach}, nil
}

package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/protocol"
)

func TestRegistryRefusesBadDefinitions(t *testing.T) {
	ok := Process("a", Contract{}, func(*Ctx, None) (None, error) { return None{}, nil })
	cases := map[string][]Def{
		"none":          nil,
		"duplicate":     {ok, ok},
		"bad path":      {Process("b", Contract{Inputs: []string{"domain..x"}}, func(*Ctx, None) (None, error) { return None{}, nil })},
		"const output":  {Process("c", Contract{Outputs: []string{"domain.const_x"}}, func(*Ctx, None) (None, error) { return None{}, nil })},
		"no name":       {Process("", Contract{}, func(*Ctx, None) (None, error) { return None{}, nil })},
		"not from Proc": {{Name: "raw"}},
	}
	for name, defs := range cases {
		if _, err := registry(defs); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := registry([]Def{ok}); err != nil {
		t.Fatal(err)
	}
}

func TestServeOutsideSupervisor(t *testing.T) {
	t.Setenv(EnvFD, "")
	err := Serve(context.Background(), Process("a", Contract{}, func(*Ctx, None) (None, error) { return None{}, nil }))
	if !errors.Is(err, ErrNotLaunched) {
		t.Fatalf("err = %v", err)
	}
}

// An undeclared read fails the call even if the process swallows the
// error, and so does a panic; neither takes the worker down.
func TestViolationsAndPanicsFailTheCall(t *testing.T) {
	sneaky := Process("sneaky", Contract{Inputs: []string{"domain.a"}}, func(ctx *Ctx, _ None) (None, error) {
		ctx.Raw("domain.b") // ignored error
		return None{}, nil
	})
	res := sneaky.Run(context.Background(), &protocol.Dispatch{ID: 1})
	if res.Err == nil || res.Err.Code != protocol.CodeContractViolation || res.Err.Path != "domain.b" {
		t.Fatalf("undeclared read: %+v", res.Err)
	}
	boom := Process("boom", Contract{}, func(*Ctx, None) (None, error) { panic("boom") })
	res = boom.Run(context.Background(), &protocol.Dispatch{ID: 2})
	if !errors.Is(res.Err, protocol.ErrProcessFailed) {
		t.Fatalf("panic: %+v", res.Err)
	}
}

// A process that reads more paths than a Result may list sends none and
// is validated against every declared input.
func TestTooManyReads(t *testing.T) {
	d := Process("wide", Contract{Inputs: []string{"domain.x"}}, func(ctx *Ctx, _ None) (None, error) {
		for i := range protocol.MaxReads + 1 {
			if _, _, err := ctx.Raw("domain.x.k" + strconv.Itoa(i)); err != nil {
				return None{}, err
			}
		}
		return None{}, nil
	})
	res := d.Run(context.Background(), &protocol.Dispatch{ID: 1, Attempt: 1, Process: "wide"})
	if res.Err != nil || res.ReadsKnown || len(res.Reads) != 0 {
		t.Fatalf("err %v, reads known %v, %d reads", res.Err, res.ReadsKnown, len(res.Reads))
	}
	few := Process("few", Contract{Inputs: []string{"domain.x"}}, func(ctx *Ctx, _ None) (None, error) {
		_, _, err := ctx.Raw("domain.x.a")
		return None{}, err
	})
	if res := few.Run(context.Background(), &protocol.Dispatch{ID: 1, Attempt: 1, Process: "few"}); !res.ReadsKnown || len(res.Reads) != 1 {
		t.Fatalf("reads known %v, reads %v", res.ReadsKnown, res.Reads)
	}
}

// TestLogTagsTheCall: Ctx.Log is the context's logger, tagged with the
// process and the dispatch, made once even when the process's goroutines
// ask for it at the same time.
func TestLogTagsTheCall(t *testing.T) {
	var buf bytes.Buffer
	ctx := zerolog.New(zerolog.SyncWriter(&buf)).WithContext(context.Background())
	var loggers [8]*zerolog.Logger
	chatty := Process("chatty", Contract{}, func(ctx *Ctx, _ None) (None, error) {
		var wg sync.WaitGroup
		for i := range loggers {
			wg.Go(func() {
				loggers[i] = ctx.Log()
				loggers[i].Info().Int("i", i).Msg("hello")
			})
		}
		wg.Wait()
		return None{}, nil
	})
	if res := chatty.Run(ctx, &protocol.Dispatch{ID: 7}); res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, l := range loggers[1:] {
		if l != loggers[0] {
			t.Fatal("Log made more than one logger for one call")
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(loggers) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(loggers), buf.String())
	}
	for _, l := range lines {
		var e struct {
			Process  string `json:"process"`
			Dispatch uint64 `json:"dispatch"`
			Message  string `json:"message"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Process != "chatty" || e.Dispatch != 7 || e.Message != "hello" {
			t.Errorf("line %s (%v): want process chatty, dispatch 7", l, err)
		}
	}
}

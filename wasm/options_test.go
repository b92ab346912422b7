package wasm

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/protocol"
)

func TestOptions(t *testing.T) {
	cfg, err := contextConfig([]byte(`{"mode":"training","vip_after":-1,"timeout_ms":1500}`))
	if err != nil || cfg.Mode != cas.Training || cfg.VIPAfter != -1 || cfg.Timeout != 1500*time.Millisecond {
		t.Fatalf("%+v %v", cfg, err)
	}
	if cfg, err := contextConfig(nil); err != nil || cfg.Mode != cas.Smart || cfg.Restore != nil {
		t.Fatalf("no options: %+v %v", cfg, err)
	}
	req, err := execRequest("p", json.RawMessage(`{"a":1}`), []byte(`{"id":"op","timeout_ms":20}`))
	if err != nil || req.OpID != "op" || req.Timeout != 20*time.Millisecond || string(req.Args) != `{"a":1}` {
		t.Fatalf("%+v %v", req, err)
	}
	run, err := runRequest("steps: [p]", []byte(`{"args":{"n":1},"id":"r1","max_ops":9,"timeout_ms":5,"detach":true,"file":"f.yaml"}`))
	if err != nil || run.ID != "r1" || run.MaxOps != 9 || run.TimeoutMS != 5 || !run.Detach || run.File != "f.yaml" || string(run.Args) != `{"n":1}` {
		t.Fatalf("%+v %v", run, err)
	}
	for _, bad := range []func() error{
		func() error { _, err := contextConfig([]byte(`{"mode":"fast"}`)); return err },
		func() error { _, err := contextConfig([]byte(`{"timeout":1}`)); return err },
		func() error { _, err := contextConfig([]byte(`{"timeout_ms":-1}`)); return err },
		func() error {
			_, err := contextConfig([]byte(`{"restore":{"version":1,"entries":[],"x":0}}`))
			return err
		},
		func() error { _, err := execRequest("p", nil, []byte(`{"op_id":"x"}`)); return err },
		func() error { _, err := execRequest("p", nil, []byte(`{"timeout_ms":1e20}`)); return err },
		func() error { _, err := runRequest("", []byte(`{"maxops":1}`)); return err },
		func() error { _, err := runRequest("", []byte(`[]`)); return err },
	} {
		if err := bad(); code(err) != protocol.CodeBadRequest {
			t.Errorf("%v, want bad_request", err)
		}
	}
}

func TestIsCode(t *testing.T) {
	for c, want := range map[string]bool{
		"insufficient_funds": true, "a": true, "x9_": true,
		"": false, "ERR_INVALID_ARG": false, "9a": false, "_a": false, "a-b": false, "a b": false,
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde": false,
	} {
		if isCode(c) != want {
			t.Errorf("isCode(%q) = %v", c, !want)
		}
	}
}

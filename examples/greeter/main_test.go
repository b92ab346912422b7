package main

import (
	"context"
	"errors"
	"testing"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
	"github.com/theus-run/theus/worker/workertest"
)

var def = worker.Process("greet", worker.Contract{Inputs: []string{"domain.greetings"}, Outputs: []string{"domain.greetings"}}, greet)

func TestGreet(t *testing.T) {
	out, err := workertest.Run(context.Background(), def, map[string]any{"domain.greetings.ada": 2}, In{Name: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Result) != `{"greeting":"hello, ada","count":3}` || string(out.Delta()["domain.greetings.ada"]) != "3" {
		t.Fatalf("result %s, delta %v", out.Result, out.Delta())
	}
	if _, err := workertest.Run(context.Background(), def, nil, In{}); !errors.Is(err, protocol.ErrBadArgs) {
		t.Fatalf("no name: %v", err)
	}
}

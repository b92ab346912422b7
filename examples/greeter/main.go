// Command greeter is a complete theus worker plugin: one process, greet,
// that says hello and counts the greetings of each name in the Context.
//
//	go build -o greeter ./examples/greeter
//	theus-supervisor --plugin ./greeter
//	theusctl exec greet --args '{"name":"ada"}'
package main

import "github.com/theus-run/theus/worker"

// In is what a caller passes: {"name": "ada"}.
type In struct {
	Name string `json:"name"`
}

// Out is what greet returns to the caller.
type Out struct {
	Greeting string `json:"greeting"`
	Count    int    `json:"count"`
}

func greet(ctx *worker.Ctx, in In) (Out, error) {
	if in.Name == "" {
		return Out{}, worker.Fail("bad_args", "greet: need a name")
	}
	path := "domain.greetings." + in.Name
	var n int
	if _, err := ctx.Get(path, &n); err != nil { // absent: n stays 0
		return Out{}, err
	}
	n++
	return Out{Greeting: "hello, " + in.Name, Count: n}, ctx.Set(path, n)
}

func main() {
	worker.Main(worker.Process("greet", worker.Contract{
		Inputs:  []string{"domain.greetings"},
		Outputs: []string{"domain.greetings"},
	}, greet))
}

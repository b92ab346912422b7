package pool

import (
	"context"
	"testing"
	"time"

	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/protocol"
)

// With a HEAVY zone, a dispatch's result comes with the lease on what it
// allocated: the blocks live until the caller closes it.
func TestDispatchHandsOverTheLease(t *testing.T) {
	z, err := heavy.New(heavy.Config{Size: 8 << 20, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	p := start(t, 1, func(c *Config) { c.Heavy = z })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, blocks, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "tensor.fill", Args: []byte(`{"key":"t","n":100000,"value":1}`)})
	if err != nil || res.Err != nil {
		t.Fatalf("tensor.fill: %v %v", err, res.Err)
	}
	if blocks == nil {
		t.Fatal("no lease with the result of a dispatch that allocated")
	}
	if st := z.Stats(); st.Blocks != 1 {
		t.Fatalf("%d blocks held before the lease is closed, want 1", st.Blocks)
	}
	blocks.Close()
	if st := z.Stats(); st.Blocks != 0 {
		t.Fatalf("%d blocks left after the lease closed", st.Blocks)
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.defaults()
	if c.MaxRestarts != 5 || c.RestartWindow != 10*time.Second || c.Workers != 1 || c.MaxInFlight != 1024 || c.HeartbeatTimeout != 5*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	c = Config{MaxRestarts: 1}
	c.defaults()
	if c.MaxRestarts != 1 {
		t.Fatalf("MaxRestarts 1 became %d", c.MaxRestarts)
	}
}

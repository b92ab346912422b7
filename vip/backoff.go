package vip

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Backoff configures the delay between optimistic retries. The zero value
// means the defaults below, which are scaled to a dispatch round trip of
// tens of microseconds, not milliseconds.
type Backoff struct {
	Initial    time.Duration // first delay; default 20µs
	Max        time.Duration // cap on the un-jittered delay; default 5ms
	Multiplier float64       // growth per retry; default 2
	// Jitter spreads each delay uniformly over [d·(1-Jitter), d·(1+Jitter)];
	// default 0.5. Set NoJitter to use exactly d.
	Jitter   float64
	NoJitter bool
	// Rand returns a number in [0,1); default math/rand/v2.Float64. Inject
	// a seeded source to make delays reproducible.
	Rand func() float64
}

// Defaults for Backoff.
const (
	DefaultInitial    = 20 * time.Microsecond
	DefaultMax        = 5 * time.Millisecond
	DefaultMultiplier = 2.0
	DefaultJitter     = 0.5
)

func (c Backoff) withDefaults() Backoff {
	if c.Initial <= 0 {
		c.Initial = DefaultInitial
	}
	if c.Max <= 0 {
		c.Max = DefaultMax
	}
	if c.Max < c.Initial {
		c.Max = c.Initial
	}
	if c.Multiplier < 1 {
		c.Multiplier = DefaultMultiplier
	}
	switch {
	case c.NoJitter:
		c.Jitter = 0
	case c.Jitter <= 0 || c.Jitter > 1:
		c.Jitter = DefaultJitter
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

// Sequence yields the delays of one invocation's retries. It is not safe for
// concurrent use; each invocation owns one.
type Sequence struct {
	exp    backoff.ExponentialBackOff // growth and cap; its own jitter is off
	jitter float64
	rand   func() float64
}

// Start returns a fresh sequence of delays.
func (c Backoff) Start() *Sequence {
	c = c.withDefaults()
	s := &Sequence{jitter: c.Jitter, rand: c.Rand}
	s.exp = backoff.ExponentialBackOff{
		InitialInterval: c.Initial,
		Multiplier:      c.Multiplier,
		MaxInterval:     c.Max,
		// The library's jitter draws from a global source; ours is injected.
		RandomizationFactor: 0,
	}
	s.exp.Reset()
	return s
}

// Next returns the next delay.
func (s *Sequence) Next() time.Duration {
	d := s.exp.NextBackOff()
	if s.jitter == 0 {
		return d
	}
	r := s.rand()
	return time.Duration(float64(d) * (1 - s.jitter + 2*s.jitter*r))
}

package supervisor

import (
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// BenchmarkMeters: what the meters add to one execute (executed: an
// outcome counter and a latency observation) and to one commit
// (committed: two histogram observations and a commit log entry), from
// every CPU at once, as the supervisor's goroutines call them. Compare
// with an execute's own cost (BenchmarkObserve, BenchmarkPipelined).
func BenchmarkMeters(b *testing.B) {
	m := newMeters(DefaultCommitLog, false)
	m.addProcesses([]string{"noop", "counter.add"})
	b.Run("hook=executed", func(b *testing.B) {
		rep := &protocol.Reply{}
		start := time.Now()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.executed("noop", start, rep)
			}
		})
	})
	b.Run("hook=committed", func(b *testing.B) {
		c := cas.Commit{Version: 1, Changes: []cas.Change{{Path: contract.Path("domain.counter"), Value: []byte("1")}},
			Origin: cas.Origin{Process: "counter.add", Attempts: 1, Start: time.Now()}}
		b.ReportAllocs()
		for i := range b.N { // under the store's lock: one at a time
			c.Version = cas.Version(i)
			m.committed(c)
		}
	})
}

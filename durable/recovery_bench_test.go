package durable

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// recoveryPaths is how many paths BenchmarkRecovery restores:
// THEUS_RECOVERY_PATHS, default 10^6.
func recoveryPaths(b *testing.B) int {
	n := 1_000_000
	if s := os.Getenv("THEUS_RECOVERY_PATHS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("THEUS_RECOVERY_PATHS=%q: want a positive count", s)
		}
	}
	return n
}

// BenchmarkRecovery: a supervisor's start on a state file of 10^6 paths
// (an 8-byte JSON value each, written by 1000-path commits): Open checks
// every record and reads the state, Restore builds the store. Reports
// the time per start, the file size and paths/s.
func BenchmarkRecovery(b *testing.B) {
	n := recoveryPaths(b)
	dir := b.TempDir()
	j, st, err := Open(Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	s, err := cas.Restore(cas.Config{Committed: j.Append}, st)
	if err != nil {
		b.Fatal(err)
	}
	const per = 1000
	for i := 0; i < n; i += per {
		var d cas.Delta
		for k := i; k < min(i+per, n); k++ {
			d.Set(contract.Path("domain.items.p"+strconv.Itoa(k)), []byte(strconv.Itoa(10_000_000+k)))
		}
		sn := s.Snapshot()
		r, err := s.Commit(context.Background(), sn.Version(), nil, d, cas.Options{OpID: "load-" + strconv.Itoa(i)})
		sn.Release()
		if err == nil {
			err = j.Wait(context.Background(), r.Version)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(dir + "/" + FileName)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t := time.Now()
	for range b.N {
		j, st, err := Open(Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		s, err := cas.Restore(cas.Config{}, st)
		if err != nil {
			b.Fatal(err)
		}
		if got := len(st.Entries); got != n {
			b.Fatalf("restored %d paths, want %d", got, n)
		}
		_ = s
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
	}
	per1 := time.Since(t) / time.Duration(b.N)
	b.ReportMetric(per1.Seconds(), "s/start")
	b.ReportMetric(float64(n)/per1.Seconds(), "paths/s")
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
}

package contract

import "testing"

// BenchmarkParse: a short path, the shape of most keys a commit names.
func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := Parse("domain.counters.k0042"); err != nil {
			b.Fatal(err)
		}
	}
}

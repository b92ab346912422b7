//go:build !race

package supervisor

// raceEnabled: this binary runs without the race detector.
const raceEnabled = false

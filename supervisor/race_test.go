//go:build race

package supervisor

// raceEnabled: this binary runs under the race detector, and so must the
// workers it builds.
const raceEnabled = true

//go:build race

package race

// Enabled reports whether this binary runs under the race detector.
const Enabled = true

//go:build race

package supervisor

// raceDetector: the race detector keeps state per goroutine (tens of KiB),
// which a memory figure per connection counts.
const raceDetector = true

package race

import (
	"slices"
	"testing"
)

// TestBuildFlags: -race exactly when this binary has it (go test -race
// runs this with it, go test without).
func TestBuildFlags(t *testing.T) {
	got := BuildFlags()
	if want := map[bool][]string{true: {"-race"}, false: nil}[Enabled]; !slices.Equal(got, want) {
		t.Fatalf("BuildFlags() = %q with Enabled %v, want %q", got, Enabled, want)
	}
}

// TestQuickExit keeps the user's GORACE options and adds the quick exit,
// and SkipExitSleep puts that entry in the environment.
func TestQuickExit(t *testing.T) {
	t.Setenv("GORACE", "halt_on_error=1")
	if got, want := QuickExit(), "GORACE=halt_on_error=1 atexit_sleep_ms=0"; got != want {
		t.Fatalf("QuickExit() = %q, want %q", got, want)
	}
	t.Setenv("GORACE", "")
	if k, v := QuickExitEnv(); k != "GORACE" || v != "atexit_sleep_ms=0" {
		t.Fatalf("QuickExitEnv() = %q, %q", k, v)
	}
	t.Setenv("GORACE", "log_path=x")
	SkipExitSleep()
	if k, v := QuickExitEnv(); k != "GORACE" || v != "log_path=x atexit_sleep_ms=0 atexit_sleep_ms=0" {
		t.Fatalf("after SkipExitSleep, QuickExitEnv() = %q, %q: GORACE was not set", k, v)
	}
}

package flux

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every run and
// machine an engine started ends with its Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

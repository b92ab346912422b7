package client

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: a
// session's reader, a stream's, or a fake supervisor's.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package turn

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: a closed
// server must stop every listener, relay and allocation goroutine.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

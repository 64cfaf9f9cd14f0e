package webhook

import (
	"testing"

	"github.com/eventbus/eventbus/internal/testenv"
)

// testenv.Main runs goleak too, and stops the Postgres cluster the
// benchmarks share.
func TestMain(m *testing.M) { testenv.Main(m) }

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var fastBuild struct {
	once sync.Once
	path string
	err  error
}

// fastBinary builds ./cmd/eventbus without the race detector: the relay at
// full speed, as deployed. Some races with Postgres only show when the relay
// is fast (see TestManyConcurrentWritersAllDelivered).
func fastBinary(t *testing.T) string {
	t.Helper()
	fastBuild.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir, err := os.MkdirTemp("", "eventbus-e2e-fast")
		if err != nil {
			fastBuild.err = err
			return
		}
		fastBuild.path = filepath.Join(dir, "eventbus")
		cmd := exec.Command("go", "build", "-o", fastBuild.path, "./cmd/eventbus")
		cmd.Dir = filepath.Dir(filepath.Dir(file))
		if out, err := cmd.CombinedOutput(); err != nil {
			fastBuild.err = err
			t.Logf("go build: %s", out)
		}
	})
	require.NoError(t, fastBuild.err)
	return fastBuild.path
}

// Many single-row transactions committing at once, against a relay at full
// speed. A fast relay publishes and marks an event within the moment between
// its transaction's commit reaching the WAL and becoming visible to other
// sessions; status writes must not miss such rows (they once did: rows stayed
// pending while the slot moved past them).
func TestManyConcurrentWritersAllDelivered(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.bin = fastBinary(t)
	e.startRelay()
	warm := e.warmUp()

	w := e.startWriters(t.Context(), 8, 750)
	ids := append(w.wait(), warm)
	e.requireDeliveredOnce(ids, 2*time.Minute)
}

package e2e

import (
	"testing"
	"time"
)

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

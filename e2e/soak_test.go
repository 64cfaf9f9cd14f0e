package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// soakEnv sets how long TestChaosSoak runs (a Go duration); by default
// one round of every fault, which keeps `make test` short.
const soakEnv = "EVENTBUS_SOAK"

// fault is one thing that goes wrong in production, injected while a burst
// of events is being written.
type fault struct {
	name   string
	inject func(w *writers)
}

// TestChaosSoak writes events in bursts and, during each burst, injects one
// fault after another — a slow broker, a broker restart, the relay killed,
// PostgreSQL restarted, the relay stopped gracefully — until the soak time
// is up. Every event written must end processed and in the stream exactly
// once. EVENTBUS_SOAK=10m runs it for ten minutes.
func TestChaosSoak(t *testing.T) {
	t.Parallel()
	soak := time.Duration(0)
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, soakEnv)
		soak = d
	}
	pg := testenv.NewPostgres(t)
	e := setup(t, withPostgres(pg))
	ctx := t.Context()
	proxy := testenv.StartLatencyProxy(t, strings.TrimPrefix(e.nats.URL(), "nats://"), 0)
	viaProxy := "EVENTBUS_NATS_URL=nats://" + proxy.Addr()
	relay := e.startRelayEnv(viaProxy)
	ids := []string{e.warmUp()}

	faults := []fault{
		{"slow broker", func(w *writers) {
			proxy.SetDelay(300 * time.Millisecond)
			w.waitWritten(w.total / 2)
			proxy.SetDelay(0)
		}},
		{"broker restart", func(w *writers) {
			e.nats.Shutdown()
			w.waitWritten(w.total / 2)
			require.NoError(t, e.nats.Restart())
		}},
		{"relay killed", func(*writers) {
			relay.kill()
			relay = e.startRelayEnv(viaProxy)
		}},
		{"postgres restart", func(*writers) {
			require.NoError(t, pg.Restart(ctx))
			e.db.Reset()
		}},
		{"relay stopped", func(*writers) {
			require.Equal(t, 0, relay.stop(), "graceful stop")
			relay = e.startRelayEnv(viaProxy)
		}},
	}
	started := time.Now()
	for round := 0; round == 0 || time.Since(started) < soak; round++ {
		for _, f := range faults {
			w := e.startWriters(ctx, 2, 500)
			w.waitWritten(50)
			t.Logf("round %d: %s", round, f.name)
			f.inject(w)
			ids = append(ids, w.wait()...)
		}
	}
	e.db.Reset()
	e.requireDeliveredOnce(ids, 3*time.Minute)
	relay.requireRunning()
}

package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// TestChaosSoak runs the relay against a three-node JetStream cluster (an R3
// stream), each node behind a latency proxy, writes events in bursts and,
// during each burst, injects one fault after another — a slow broker, a
// stream leader change, a node restarted, the relay killed, PostgreSQL
// restarted, the relay stopped gracefully — until the soak time is up. Every
// event written must end processed, none failed or retried, and in the
// stream exactly once. EVENTBUS_SOAK=10m runs it for ten minutes.
func TestChaosSoak(t *testing.T) {
	t.Parallel()
	soak := time.Duration(0)
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, soakEnv)
		soak = d
	}
	pg := testenv.NewPostgres(t)
	cluster := testenv.NATSCluster(t, 3)
	e := setup(t, withPostgres(pg), withNATSCluster(cluster))
	ctx := t.Context()
	c := e.connectCluster()
	_, err := c.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: e.stream, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage, Replicas: 3,
	})
	require.NoError(t, err)
	c.waitReplicated()

	var proxies []*testenv.LatencyProxy
	var urls []string
	for _, n := range cluster.Nodes() {
		p := testenv.StartLatencyProxy(t, strings.TrimPrefix(n.URL(), "nats://"), 0)
		proxies = append(proxies, p)
		urls = append(urls, "nats://"+p.Addr())
	}
	viaProxies := "EVENTBUS_NATS_URL=" + strings.Join(urls, ",")
	relay := e.startRelayEnv(viaProxies)
	ids := []string{e.warmUp()}

	restarted := 0
	faults := []fault{
		{"slow broker", func(w *writers) {
			for _, p := range proxies {
				p.SetDelay(300 * time.Millisecond)
			}
			w.waitWritten(w.total * 3 / 4)
			for _, p := range proxies {
				p.SetDelay(0)
			}
		}},
		{"stream leader change", func(*writers) {
			leader := cluster.StreamLeader(e.stream)
			require.NotNil(t, leader, "the stream has a leader")
			c.stepDown(c.otherThan(leader.Name()))
		}},
		{"node restart", func(w *writers) {
			node := cluster.Nodes()[restarted%3]
			restarted++
			node.Shutdown()
			w.waitWritten(w.total * 3 / 4)
			require.NoError(t, node.Restart())
			require.NoError(t, cluster.WaitReady(time.Minute))
			c.waitReplicated()
		}},
		{"relay killed", func(*writers) {
			relay.kill()
			relay = e.startRelayEnv(viaProxies)
		}},
		{"postgres restart", func(*writers) {
			require.NoError(t, pg.Restart(ctx))
			e.db.Reset()
		}},
		{"relay stopped", func(*writers) {
			require.Equal(t, 0, relay.stop(), "graceful stop")
			relay = e.startRelayEnv(viaProxies)
		}},
	}
	started := time.Now()
	for round := 0; round == 0 || time.Since(started) < soak; round++ {
		for _, f := range faults {
			w := e.startWriters(ctx, 2, 500)
			w.waitWritten(100)
			t.Logf("round %d: %s", round, f.name)
			f.inject(w)
			ids = append(ids, w.wait()...)
		}
	}
	e.db.Reset()
	e.requireDeliveredOnce(ids, 3*time.Minute)
	var retried int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM public.event_bus WHERE retry_count > 0 OR error_message IS NOT NULL`).Scan(&retried))
	require.Zero(t, retried, "no fault counts against an event's retries")
	relay.requireRunning()
}

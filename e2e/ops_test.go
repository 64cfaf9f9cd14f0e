package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSlotResetKeepsPendingRows(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	relay := e.startRelay()

	var ids []string
	for i := range 3 {
		ids = append(ids, e.publish(ctx, "before.stop", fmt.Sprintf("a-%d", i), `{}`))
	}
	e.waitProcessed(3, 30*time.Second)
	require.Zero(t, relay.stop(), "exit code after SIGTERM")

	for i := range 5 {
		ids = append(ids, e.publish(ctx, "while.stopped", fmt.Sprintf("m-%d", i), `{}`))
	}
	var afterStopped string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&afterStopped))

	r := e.cli("slot", "reset")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, e.slot)
	// The new slot starts past the events written while the relay was
	// stopped: only the backfill can deliver them.
	var confirmed string
	var past bool
	require.NoError(t, e.db.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, confirmed_flush_lsn >= $2::pg_lsn
		FROM pg_replication_slots WHERE slot_name = $1`, e.slot, afterStopped).Scan(&confirmed, &past))
	require.True(t, past, "the recreated slot starts at %s, past %s", confirmed, afterStopped)

	for i := range 4 {
		ids = append(ids, e.publish(ctx, "after.reset", fmt.Sprintf("k-%d", i), `{}`))
	}
	require.Equal(t, map[string]int{"processed": 3, "pending": 9}, e.statusCounts())

	e.startRelay()
	e.requireDeliveredOnce(ids, 60*time.Second)
}

func TestSlotResetWhileTheRelayRunsNeedsForce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	relay := e.startRelay()
	ids := []string{e.warmUp()}

	r := e.cli("slot", "reset")
	require.NotEqual(t, 0, r.code, "slot reset while the relay streams: %s", r)
	requireOneLine(t, r.stderr, "--force")
	var backfilled bool
	require.NoError(t, e.db.QueryRow(ctx, `SELECT backfilled_at IS NOT NULL FROM public.eventbus_slot_state WHERE slot_name = $1`, e.slot).Scan(&backfilled))
	require.True(t, backfilled, "a refused reset changes nothing: the slot's backfill stays recorded")
	ids = append(ids, e.publish(ctx, "after.refusal", "r-1", `{}`))
	e.waitProcessed(2, 30*time.Second)

	const writers, perWriter = 4, 2000
	const total = writers * perWriter
	w := e.startWriters(ctx, writers, perWriter)
	w.waitWritten(500)
	before := w.written.Load()
	r = e.cli("slot", "reset", "--force")
	after := w.written.Load()
	require.Equal(t, 0, r.code, "slot reset --force while the relay streams: %s", r)
	t.Logf("slot reset --force while %d..%d of %d events were written: %s", before, after, total, strings.TrimSpace(r.stdout))
	require.Less(t, before, int64(total), "the slot is reset while the writers are writing")

	ids = append(ids, w.wait()...)
	ids = append(ids, e.publish(ctx, "after.reset", "r-2", `{}`))
	e.requireDeliveredOnce(ids, 2*time.Minute)
	relay.requireRunning()
	e.waitSlotActive(true)
}

// freeAddr returns a loopback address with a port free at the time of the
// call, for a process the test starts next to listen on. The port is below
// Linux's default ephemeral range (32768–60999), which every listen on port
// 0 draws from: the test's httptest servers, NATS and PostgreSQL, other
// tests' and other test processes'. A port taken from that range could be
// handed to one of them before the process meant for it binds it (a
// webhook receiver once answered a deliverer's /readyz that way).
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 1000 {
		port := freePortsFrom + (freePortsStart+int(nextFreePort.Add(1)))%freePortsCount
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		return addr
	}
	t.Fatalf("no free port in %d..%d", freePortsFrom, freePortsFrom+freePortsCount-1)
	return ""
}

// freeAddr's ports: 20000–31999, handed out in turn from a random start, so
// that two test processes rarely try the same ones.
const (
	freePortsFrom  = 20000
	freePortsCount = 12000
)

var (
	freePortsStart = rand.IntN(freePortsCount)
	nextFreePort   atomic.Int64
)

// httpGet returns the status code and body of GET http://addr/path, or code
// 0 and the error when the request fails.
func httpGet(addr, path string) (int, string) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

// waitHTTP waits until GET addr/path answers code.
func waitHTTP(t *testing.T, timeout time.Duration, addr, path string, code int) {
	t.Helper()
	eventually(t, timeout, func() (bool, string) {
		got, body := httpGet(addr, path)
		return got == code, fmt.Sprintf("GET %s: %d %q, want %d", path, got, body, code)
	})
}

func TestHTTPHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr))
	ctx := t.Context()
	relay := e.startRelay()

	waitHTTP(t, 30*time.Second, addr, "/healthz", http.StatusOK)
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)

	for i := range 3 {
		e.publish(ctx, "metric.test", fmt.Sprintf("h-%d", i), `{}`)
	}
	e.waitProcessed(3, 30*time.Second)
	// The relay counts an event once its row is marked: a moment after the
	// row shows it.
	var metrics string
	eventually(t, 30*time.Second, func() (bool, string) {
		var code int
		code, metrics = httpGet(addr, "/metrics")
		return code == http.StatusOK && strings.Contains(metrics, `eventbus_events_published_total{event_type="metric.test"} 3`+"\n"),
			fmt.Sprintf("/metrics answered %d: %s", code, metrics)
	})
	assert.Contains(t, metrics, "\neventbus_replication_lag_bytes ")
	assert.Contains(t, metrics, "\n"+`eventbus_events_published_total{event_type="metric.test"} 3`+"\n")

	e.nats.Shutdown()
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusServiceUnavailable)
	code, body := httpGet(addr, "/readyz")
	assert.Equal(t, "not ready: NATS is disconnected\n", body, "/readyz says why (code %d)", code)
	code, body = httpGet(addr, "/healthz")
	require.Equal(t, http.StatusOK, code, "/healthz while NATS is down: %s", body)

	require.NoError(t, e.nats.Restart())
	waitHTTP(t, 60*time.Second, addr, "/readyz", http.StatusOK)
	e.publish(ctx, "metric.test", "h-after", `{}`)
	e.waitProcessed(4, 30*time.Second)
	relay.requireRunning()
}

func TestHotStandbyTakesOverFromAKilledRelay(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	addrA, addrB := freeAddr(t), freeAddr(t)

	active := e.startRelayEnv("EVENTBUS_HTTP_ADDR=" + addrA)
	waitHTTP(t, 30*time.Second, addrA, "/readyz", http.StatusOK)
	warm := e.warmUp()

	standby := e.startRelayEnv("EVENTBUS_HTTP_ADDR=" + addrB)
	waitHTTP(t, 30*time.Second, addrB, "/healthz", http.StatusOK)
	eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(standby.out.String(), `msg="standby:`), "the second relay logs that it is a standby"
	})
	code, body := httpGet(addrB, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "the standby's /readyz: %s", body)
	assert.Equal(t, "not ready: not streaming from the replication slot: standby: the slot is in use by another relay\n", body)

	const writers, perWriter = 4, 500
	const total = writers * perWriter
	w := e.startWriters(ctx, writers, perWriter)
	w.waitWritten(total / 3)
	active.kill()
	killed := time.Now()
	written := w.written.Load()
	require.Less(t, written, int64(total), "the active relay is killed while the writers are writing")

	waitHTTP(t, 30*time.Second, addrB, "/readyz", http.StatusOK)
	takeover := time.Since(killed)
	t.Logf("SIGKILL with %d of %d events written; the standby was ready %s later", written, total, takeover.Round(time.Millisecond))
	require.Less(t, takeover, 10*time.Second, "the standby takes over within seconds")

	ids := append(w.wait(), warm)
	e.requireDeliveredOnce(ids, 2*time.Minute)
	standby.requireRunning()
	assert.Equal(t, 1, strings.Count(standby.out.String(), `msg="standby:`), "the standby logs its waiting once")
}

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// warmUp publishes one event and waits until the relay processed it, so that
// a burst that follows meets a relay that is streaming. It returns the id.
func (e *env) warmUp() string {
	e.t.Helper()
	id := e.publish(e.t.Context(), "warm.up", "warm-up", `{}`)
	e.waitProcessed(1, 60*time.Second)
	return id
}

// requireRunning fails the test if the relay has exited.
func (p *relayProc) requireRunning() {
	p.t.Helper()
	select {
	case <-p.done:
		p.t.Fatalf("the relay exited (%v); output:\n%s", p.err, p.out.String())
	default:
	}
}

// waitWritten waits until the writers committed at least n events.
func (w *writers) waitWritten(n int) {
	w.e.t.Helper()
	eventually(w.e.t, 60*time.Second, func() (bool, string) {
		got := w.written.Load()
		return got >= int64(n), fmt.Sprintf("%d of %d events written", got, w.total)
	})
}

func TestRelayKilledMidBurstLosesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	relay := e.startRelay()
	warm := e.warmUp()

	const writers, perWriter = 4, 1000
	const total = writers * perWriter
	w := e.startWriters(t.Context(), writers, perWriter)
	w.waitWritten(total / 3)
	relay.kill()
	written := w.written.Load()
	t.Logf("SIGKILL with %d of %d events written; statuses %v", written, total, e.statusCounts())
	require.Less(t, written, int64(total), "the relay is killed while the writers are writing")

	e.startRelay()
	ids := append(w.wait(), warm)
	e.requireDeliveredOnce(ids, 2*time.Minute)
}

func TestNATSOutageMidBurstLosesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	relay := e.startRelay()
	warm := e.warmUp()

	const writers, perWriter = 2, 1000
	const total = writers * perWriter
	w := e.startWriters(t.Context(), writers, perWriter)
	w.waitWritten(total / 3)
	e.nats.Shutdown()
	written := w.written.Load()
	t.Logf("NATS shut down with %d of %d events written; statuses %v", written, total, e.statusCounts())
	require.Less(t, written, int64(total), "NATS goes down while the writers are writing")
	time.Sleep(3 * time.Second) // the outage
	require.Zero(t, e.statusCounts()["failed"], "an outage fails no event")
	require.NoError(t, e.nats.Restart())

	ids := append(w.wait(), warm)
	e.requireDeliveredOnce(ids, 2*time.Minute)
	var retried int
	require.NoError(t, e.db.QueryRow(t.Context(), `SELECT count(*) FROM public.event_bus WHERE retry_count > 0 OR error_message IS NOT NULL`).Scan(&retried))
	require.Zero(t, retried, "an outage counts against no event's retries")
	relay.requireRunning()
}

func TestPostgresRestartMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	e := setup(t, withPostgres(pg))
	ctx := t.Context()
	relay := e.startRelay()
	warm := e.warmUp()

	const writers, perWriter = 2, 1500
	const total = writers * perWriter
	w := e.startWriters(ctx, writers, perWriter)
	w.waitWritten(300)
	before := w.written.Load()
	started := time.Now()
	require.NoError(t, pg.Restart(ctx))
	restarted := w.written.Load()
	t.Logf("Postgres restarted in %s; %d events written before, %d when it was back, of %d",
		time.Since(started).Round(time.Millisecond), before, restarted, total)
	require.Less(t, restarted, int64(total), "events are written after the restart too")

	// The test's own pool lost its connections too.
	e.db.Reset()
	ids := append(w.wait(), warm)
	e.requireDeliveredOnce(ids, 2*time.Minute)
	relay.requireRunning()
}

func TestSIGTERMStopsCleanlyAndTheNextRunResumes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	relay := e.startRelay()
	warm := e.warmUp()

	const writers, perWriter = 2, 1000
	w := e.startWriters(ctx, writers, perWriter)
	var atStop map[string]int
	eventually(t, 60*time.Second, func() (bool, string) {
		atStop = e.statusCounts()
		return atStop["processed"] >= 300 && atStop["pending"] > 0, fmt.Sprintf("statuses %v: want the relay mid-delivery", atStop)
	})
	started := time.Now()
	code := relay.stop()
	t.Logf("SIGTERM with statuses %v: exit code %d after %s", atStop, code, time.Since(started).Round(time.Millisecond))
	require.Zero(t, code, "exit code after SIGTERM")
	// A graceful stop drains: whatever reached the stream is marked.
	var unmarked []string
	for _, m := range e.streamMessages() {
		if r := e.eventRow(ctx, m.Body.ID); r.Status != "processed" {
			unmarked = append(unmarked, m.Body.ID+" "+r.Status)
		}
	}
	require.Empty(t, unmarked, "events in the stream but not marked processed after the graceful stop")
	ids := append(w.wait(), warm)

	// The last event, in a transaction of its own: an LSN read inside it lies
	// between its insert and its commit.
	tx, err := e.db.Begin(ctx)
	require.NoError(t, err)
	var last, insideLast string
	require.NoError(t, tx.QueryRow(ctx, `SELECT public.publish_event('last.event', 'test', 'last', '{}', '{}', NULL)::text`).Scan(&last))
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&insideLast))
	require.NoError(t, tx.Commit(ctx))
	var afterLast string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&afterLast))
	ids = append(ids, last)

	relay = e.startRelay()
	e.requireDeliveredOnce(ids, 2*time.Minute)
	slotState := func() (confirmed string, active, pastLast, pastAfter bool) {
		require.NoError(t, e.db.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, active,
			confirmed_flush_lsn > $2::pg_lsn, confirmed_flush_lsn >= $3::pg_lsn
			FROM pg_replication_slots WHERE slot_name = $1`, e.slot, insideLast, afterLast).Scan(&confirmed, &active, &pastLast, &pastAfter))
		return confirmed, active, pastLast, pastAfter
	}
	// With nothing in flight the slot advances to the server's WAL position,
	// past WAL written after the last event (the relay's own status updates,
	// other databases).
	eventually(t, 30*time.Second, func() (bool, string) {
		confirmed, _, _, pastAfter := slotState()
		return pastAfter, fmt.Sprintf("confirmed_flush_lsn %s, want >= %s (read right after the last event's commit)", confirmed, afterLast)
	})
	require.Zero(t, relay.stop(), "exit code of a stop with nothing pending")

	confirmed, active, pastLast, pastAfter := slotState()
	t.Logf("after the stop, slot confirmed_flush_lsn %s; last event: inside its transaction %s, right after its commit %s", confirmed, insideLast, afterLast)
	require.False(t, active, "the slot is released")
	require.True(t, pastLast, "confirmed_flush_lsn %s has passed the last event (LSN %s inside its transaction)", confirmed, insideLast)
	require.True(t, pastAfter, "confirmed_flush_lsn %s has reached the LSN %s read right after the last event's commit", confirmed, afterLast)
}

// TestRelayKilledDuringNATSOutageLosesNothing kills the relay while it holds
// events it received from the slot but could not publish: the slot must not
// have moved past them, so the next run publishes them.
func TestRelayKilledDuringNATSOutageLosesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	relay := e.startRelay()
	warm := e.warmUp()
	e.nats.Shutdown()

	var first, afterFirst string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT public.publish_event('first.event', 'test', 'first', '{}', '{}', NULL)::text`).Scan(&first))
	require.NoError(t, e.db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&afterFirst))
	ids := append(e.startWriters(ctx, 2, 200).wait(), warm, first)
	var written string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&written))

	// The relay reports as written what it received.
	eventually(t, 30*time.Second, func() (bool, string) {
		var received *string
		var ok bool
		require.NoError(t, e.db.QueryRow(ctx, `SELECT r.write_lsn::text, coalesce(r.write_lsn >= $2::pg_lsn, false)
			FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
			WHERE s.slot_name = $1`, e.slot, written).Scan(&received, &ok))
		return ok, fmt.Sprintf("relay received up to %v, want %s", received, written)
	})
	// The slot may be confirmed up to a keepalive position inside the first
	// event's transaction (PostgreSQL sends again a transaction that commits
	// past the confirmed position), but not up to its commit, which lies
	// before afterFirst.
	var confirmed string
	var behind bool
	require.NoError(t, e.db.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, confirmed_flush_lsn < $2::pg_lsn
		FROM pg_replication_slots WHERE slot_name = $1`, e.slot, afterFirst).Scan(&confirmed, &behind))
	require.True(t, behind, "confirmed_flush_lsn %s is before the commit of the first unpublished event (< %s)", confirmed, afterFirst)
	relay.kill()

	require.NoError(t, e.nats.Restart())
	e.startRelay()
	e.requireDeliveredOnce(ids, 2*time.Minute)
}

// A session that fails on the database (a restart, a failover) must not
// publish again what the broker already acknowledged: the PubAcks that had
// arrived but were still queued for the acker when the session failed used
// to be dropped, and the next session's catch-up published those events
// again. Within the duplicate window the stream dropped the copies; an
// outage longer than the window (here 100 ms, the server's minimum) stored
// them twice.
func TestPostgresRestartOutlastingTheDuplicateWindowStoresNoCopies(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	e := setup(t, withPostgres(pg), withEnv("EVENTBUS_DUPLICATE_WINDOW=100ms"))
	ctx := t.Context()
	relay := e.startRelay()
	warm := e.warmUp()

	const writers, perWriter = 4, 1500
	w := e.startWriters(ctx, writers, perWriter)
	for range 3 {
		w.waitWritten(int(w.written.Load()) + 400)
		require.NoError(t, pg.Restart(ctx))
		e.db.Reset()
	}
	require.Less(t, w.written.Load(), int64(writers*perWriter), "events are written after the restarts too")
	ids := append(w.wait(), warm)
	e.requireDeliveredOnce(ids, 2*time.Minute)
	relay.requireRunning()
}

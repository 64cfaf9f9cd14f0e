package e2e

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
	"github.com/eventbus/eventbus/internal/testenv"
)

// The tests of this file need PostgreSQL 17 (failover slots, slot
// synchronization) and skip on older servers:
//
//	EVENTBUS_TEST_PG_BINDIR=$(scripts/install-postgres.sh 17) go test ./e2e -run 'Failover|SlotReset'

// failoverPair is a primary with a hot standby that keeps the relay's
// failover slot in step (pgcluster.StartStandby: synchronized_standby_slots on
// the primary), and the test's environment on both: its database URL names
// the two servers with target_session_attrs=read-write, and the relay
// creates its slot with EVENTBUS_SLOT_FAILOVER=true.
type failoverPair struct {
	e                *env
	primary, standby *pgcluster.Cluster
	physicalSlot     string        // the standby's slot on the primary
	onStandby        *pgxpool.Pool // the test's database on the standby: read-only until promoted
}

func newFailoverPair(t *testing.T, opts ...option) *failoverPair {
	t.Helper()
	testenv.RequirePostgres(t, 170000)
	f := &failoverPair{primary: testenv.NewPostgres(t), physicalSlot: testenv.UniqueName(t, "standby")}
	f.standby = testenv.NewStandby(t, f.primary, f.physicalSlot)
	f.e = setup(t, append([]option{withPostgres(f.primary), withStandbys(f.standby), withEnv("EVENTBUS_SLOT_FAILOVER=true")}, opts...)...)
	cfg, err := pgconn.ParseConfig(f.e.dbURL)
	require.NoError(t, err)
	f.onStandby, err = pgxpool.New(t.Context(), f.standby.URL(cfg.Database))
	require.NoError(t, err)
	t.Cleanup(f.onStandby.Close)
	return f
}

// syncedSlot is the relay's slot as the standby has it.
type syncedSlot struct {
	exists, synced, temporary, failover bool
	confirmed                           string
}

func (f *failoverPair) syncedSlot() syncedSlot {
	t := f.e.t
	t.Helper()
	var s syncedSlot
	err := f.onStandby.QueryRow(t.Context(), `SELECT true, synced, temporary, failover, coalesce(confirmed_flush_lsn::text, '')
		FROM pg_replication_slots WHERE slot_name = $1`, f.e.slot).Scan(&s.exists, &s.synced, &s.temporary, &s.failover, &s.confirmed)
	if !errors.Is(err, pgx.ErrNoRows) {
		require.NoError(t, err)
	}
	return s
}

// waitSynced waits until the standby's copy of the slot is synchronized,
// persistent (a promotion keeps it) and confirmed at least up to lsn (cmp
// ">=") or past it (">": lsn lies inside a transaction, which a keepalive
// can confirm up to).
func (f *failoverPair) waitSynced(cmp, lsn string) {
	t := f.e.t
	t.Helper()
	eventually(t, 60*time.Second, func() (bool, string) {
		s := f.syncedSlot()
		past := false
		if s.confirmed != "" {
			require.NoError(t, f.onStandby.QueryRow(t.Context(), `SELECT $1::pg_lsn `+cmp+` $2::pg_lsn`, s.confirmed, lsn).Scan(&past))
		}
		return s.synced && !s.temporary && s.failover && past,
			fmt.Sprintf("slot %s on the standby: %+v, want synced, persistent, failover, confirmed %s %s", f.e.slot, s, cmp, lsn)
	})
}

// insertLSN is the primary's current WAL insert position.
func (f *failoverPair) insertLSN() string {
	f.e.t.Helper()
	var lsn string
	require.NoError(f.e.t, f.e.db.QueryRow(f.e.t.Context(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn))
	return lsn
}

// failOver kills the primary as a crash of its host would, promotes the
// standby, and points the test's pool at it (the writers and the relay find
// it themselves: target_session_attrs=read-write).
func (f *failoverPair) failOver() {
	t := f.e.t
	t.Helper()
	started := time.Now()
	require.NoError(t, f.primary.Kill())
	require.NoError(t, f.standby.Promote(t.Context()))
	t.Logf("failover: primary killed, standby promoted in %s", time.Since(started).Round(time.Millisecond))
	f.e.db.Reset()
}

// requireResumedFromSyncedSlot requires that the relay streams from the slot
// the standby synchronized, from the position it had at the promotion
// (syncedAt): it did not create a slot of its own on the new primary.
func (f *failoverPair) requireResumedFromSyncedSlot(relay *relayProc, syncedAt string) {
	t := f.e.t
	t.Helper()
	f.e.waitSlotActive(true)
	var synced, failover bool
	require.NoError(t, f.e.db.QueryRow(t.Context(), `SELECT synced, failover FROM pg_replication_slots WHERE slot_name = $1`, f.e.slot).Scan(&synced, &failover))
	assert.True(t, synced, "the relay streams from the slot the standby synchronized (a slot it created would not be synced)")
	assert.True(t, failover, "the slot is still a failover slot")
	out := relay.out.String()
	assert.Equal(t, 1, strings.Count(out, "replication slot created"), "the relay created its slot once, on the first primary")
	assert.NotContains(t, out, "replication slot was missing")
	assert.NotContains(t, out, "DATA RACE", "the relay (built with -race) lost its server without a race")
	assert.Regexp(t, regexp.MustCompile(`msg=streaming slot=\S+ from=`+regexp.QuoteMeta(syncedAt)+`\b`), out,
		"a session on the new primary started from the synchronized position %s", syncedAt)
}

// requireEveryRowDeliveredOnce waits until every row of event_bus on the
// (new) primary is processed, then requires that the stream holds each of
// them exactly once and nothing else: no event the new primary lacks (the
// relay never received WAL the standby had not flushed), no duplicate (the
// copies sent again after the failover were dropped by JetStream). It
// returns the ids.
func (e *env) requireEveryRowDeliveredOnce(timeout time.Duration) map[string]bool {
	e.t.Helper()
	rows, err := e.db.Query(e.t.Context(), `SELECT id::text FROM public.event_bus`)
	require.NoError(e.t, err)
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		require.NoError(e.t, rows.Scan(&id))
		ids[id] = true
	}
	require.NoError(e.t, rows.Err())
	e.waitProcessed(len(ids), timeout)

	msgs := e.streamMessages()
	seen := make(map[string]int, len(msgs))
	for _, m := range msgs {
		require.Equal(e.t, m.Body.ID, m.Header.Get("Nats-Msg-Id"), "Nats-Msg-Id is the event id")
		seen[m.Body.ID]++
	}
	var dup, ghost, missing []string
	for id, n := range seen {
		if n > 1 {
			dup = append(dup, id)
		}
		if !ids[id] {
			ghost = append(ghost, id)
		}
	}
	for id := range ids {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	require.Empty(e.t, dup, "events stored more than once in the stream")
	require.Empty(e.t, ghost, "events in the stream that the new primary does not have")
	require.Empty(e.t, missing, "rows of the new primary missing from the stream")
	require.Len(e.t, msgs, len(ids), "stream messages == rows of the new primary")
	return ids
}

// TestFailoverSlotSurvivesPromotion kills the primary in the middle of a
// burst and promotes the standby: the relay reconnects to the new primary
// through the multi-host URL, resumes from the slot the standby
// synchronized, and every event the new primary has is in the stream once.
func TestFailoverSlotSurvivesPromotion(t *testing.T) {
	t.Parallel()
	f := newFailoverPair(t)
	e, ctx := f.e, t.Context()
	relay := e.startRelay()
	e.warmUp()
	f.waitSynced(">=", f.insertLSN())

	rep, r := e.doctor()
	assert.Equal(t, "ok", rep.statuses()["failover"], "doctor: %s", r.stdout)
	assert.Contains(t, r.stdout, f.physicalSlot, "doctor names synchronized_standby_slots")

	const writers, perWriter = 2, 1500
	w := e.startWriters(ctx, writers, perWriter)
	w.waitWritten(500)
	var confirmedBefore string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&confirmedBefore))
	require.NoError(t, f.primary.Kill())
	written := w.written.Load()
	require.Less(t, written, int64(writers*perWriter), "the primary dies while the writers are writing")
	// The standby's copy cannot move any more: its primary is gone.
	syncedAt := f.syncedSlot().confirmed
	require.NoError(t, f.standby.Promote(ctx))
	e.db.Reset()
	t.Logf("primary killed with %d of %d events written; the relay had confirmed %s on it (shortly before), the standby's slot %s",
		written, writers*perWriter, confirmedBefore, syncedAt)

	committed := w.wait() // on one server or the other
	rows := e.requireEveryRowDeliveredOnce(2 * time.Minute)
	lost := 0
	for _, id := range committed {
		if !rows[id] {
			lost++
		}
	}
	// Asynchronous physical replication: a commit the old primary
	// acknowledged just before it died may never have reached the standby.
	// Such events are not in the stream either (checked above).
	t.Logf("%d rows on the new primary; %d events committed on the old primary were lost with it", len(rows), lost)
	f.requireResumedFromSyncedSlot(relay, syncedAt)
	relay.requireRunning()
}

// publishBatch publishes n events of eventType, each in its own transaction,
// and returns their ids and a WAL position inside the last one's
// transaction: a slot confirmed past it has done the whole batch.
func (e *env) publishBatch(eventType string, n int) (ids []string, insideLast string) {
	e.t.Helper()
	ctx := e.t.Context()
	for i := range n - 1 {
		ids = append(ids, e.publish(ctx, eventType, fmt.Sprintf("%s-%d", eventType, i), `{}`))
	}
	tx, err := e.db.Begin(ctx)
	require.NoError(e.t, err)
	var last string
	require.NoError(e.t, tx.QueryRow(ctx, `SELECT public.publish_event($1, 'test', 'last', '{}', '{}', NULL)::text`, eventType).Scan(&last))
	require.NoError(e.t, tx.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&insideLast))
	require.NoError(e.t, tx.Commit(ctx))
	return append(ids, last), insideLast
}

// cutStandbyStream stops the WAL stream to the standby once it has flushed
// everything written so far and the relay's walsender has sent it: the
// primary's walsender of the standby's slot gets SIGSTOP (a network
// partition between the two, which the standby does not notice within the
// test). The standby's slot synchronization still reaches the primary over
// its own connection.
//
// The relay's walsender has to be through the written WAL before the cut:
// a walsender of a failover slot waits, before it reads on, for the standby
// to confirm everything flushed at that moment (PostgreSQL 17's
// NeedToWaitForStandbys), and after the cut the relay's own marks are WAL
// the standby never confirms. A walsender still behind the last event when
// the first mark is flushed would never send that event.
func (f *failoverPair) cutStandbyStream() {
	t := f.e.t
	t.Helper()
	written := f.insertLSN()
	var pid int
	eventually(t, 30*time.Second, func() (bool, string) {
		var flushed, sent string
		var caughtUp bool
		require.NoError(t, f.e.db.QueryRow(t.Context(), `SELECT coalesce(p.active_pid, 0), coalesce(p.restart_lsn::text, ''), coalesce(r.sent_lsn::text, ''),
				coalesce(p.restart_lsn >= $3::pg_lsn AND r.sent_lsn >= $3::pg_lsn, false)
			FROM pg_replication_slots p, pg_replication_slots l LEFT JOIN pg_stat_replication r ON r.pid = l.active_pid
			WHERE p.slot_name = $1 AND l.slot_name = $2`, f.physicalSlot, f.e.slot, written).Scan(&pid, &flushed, &sent, &caughtUp))
		return pid != 0 && caughtUp, fmt.Sprintf("standby flushed %s (walsender %d), the relay's walsender sent %s, want both >= %s", flushed, pid, sent, written)
	})
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) // Kill takes it along; unless the test failed first
}

// waitConfirmedPast waits until the relay confirmed the slot past lsn on
// the primary.
func (f *failoverPair) waitConfirmedPast(lsn string) {
	t := f.e.t
	t.Helper()
	eventually(t, 60*time.Second, func() (bool, string) {
		var confirmed, sent, waiting string
		var past bool
		require.NoError(t, f.e.db.QueryRow(t.Context(), `SELECT s.confirmed_flush_lsn::text, s.confirmed_flush_lsn > $2::pg_lsn,
				coalesce(r.sent_lsn::text, ''), coalesce(a.wait_event, '')
			FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
			WHERE s.slot_name = $1`, f.e.slot, lsn).Scan(&confirmed, &past, &sent, &waiting))
		return past, fmt.Sprintf("slot confirmed at %s on the primary, want > %s (its walsender sent %s, waits on %q)", confirmed, lsn, sent, waiting)
	})
}

// statusesOnStandby counts the events of ids by status as the standby has them.
func (f *failoverPair) statusesOnStandby(ids []string) map[string]int {
	t := f.e.t
	t.Helper()
	rows, err := f.onStandby.Query(t.Context(), `SELECT status, count(*) FROM public.event_bus WHERE id = ANY($1::uuid[]) GROUP BY 1`, ids)
	require.NoError(t, err)
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(t, rows.Scan(&s, &n))
		counts[s] = n
	}
	require.NoError(t, rows.Err())
	return counts
}

// TestFailoverToASlotBehindTheRelay promotes a standby whose copy of the
// slot is older than what the relay had confirmed on the old primary: the
// relay streams again from the older position. Of the events it sees again,
// those whose processed mark reached the standby are skipped (the table is
// the dedup record); those whose mark was lost with the old primary are
// published again, JetStream drops the copies (Nats-Msg-Id within the
// duplicate window), and they are marked on the new primary.
func TestFailoverToASlotBehindTheRelay(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	f := newFailoverPair(t, withEnv("EVENTBUS_HTTP_ADDR="+addr))
	e, ctx := f.e, t.Context()
	relay := e.startRelay()
	e.warmUp()
	f.waitSynced(">=", f.insertLSN())

	// Freeze the standby's copy of the slot: no more synchronization.
	_, err := f.onStandby.Exec(ctx, `ALTER SYSTEM SET sync_replication_slots = off`)
	require.NoError(t, err)
	_, err = f.onStandby.Exec(ctx, `SELECT pg_reload_conf()`)
	require.NoError(t, err)
	eventually(t, 30*time.Second, func() (bool, string) {
		var n int
		require.NoError(t, f.onStandby.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'slotsync worker'`).Scan(&n))
		return n == 0, "the standby's slot sync worker is still running"
	})
	syncedAt := f.syncedSlot().confirmed

	// Marked, and the marks replicated: seen again after the failover, skipped.
	marked, insideMarked := e.publishBatch("kept.mark", 20)
	f.waitConfirmedPast(insideMarked)
	eventually(t, 30*time.Second, func() (bool, string) {
		c := f.statusesOnStandby(marked)
		return c["processed"] == len(marked), fmt.Sprintf("marks on the standby: %v", c)
	})
	// Published and marked with the stream to the standby cut: the standby
	// has the rows (the relay could not have received them otherwise) but
	// not their marks.
	e.nats.Shutdown()
	unmarked, insideUnmarked := e.publishBatch("lost.mark", 20)
	f.cutStandbyStream()
	require.NoError(t, e.nats.Restart())
	f.waitConfirmedPast(insideUnmarked)
	require.Equal(t, map[string]int{"pending": len(unmarked)}, f.statusesOnStandby(unmarked), "the standby lacks the marks")
	require.Equal(t, syncedAt, f.syncedSlot().confirmed, "the standby's copy of the slot stayed behind")

	f.failOver()
	e.requireEveryRowDeliveredOnce(time.Minute)
	f.requireResumedFromSyncedSlot(relay, syncedAt)
	// The counters move just after the marks commit: wait for them too.
	s := waitMetrics(t, 30*time.Second, addr, func(s scrape) (bool, string) {
		skipped := s.value("eventbus_catchup_skipped_total")
		again := s.value(`eventbus_events_published_total{event_type="lost.mark"}`)
		return skipped >= float64(len(marked)) && again >= float64(2*len(unmarked)),
			fmt.Sprintf("catch-up skipped %v events, lost.mark published %v times", skipped, again)
	})
	assert.Equal(t, float64(len(marked)), s.value(`eventbus_events_published_total{event_type="kept.mark"}`), "events whose marks survived are not published again")
	assert.GreaterOrEqual(t, s.value(`eventbus_events_published_total{event_type="lost.mark"}`), float64(2*len(unmarked)),
		"events whose marks were lost are published again (and the stream holds each once)")
	relay.requireRunning()
}

// TestFailoverMarksLostBelowTheSyncedSlot promotes a standby that lacks the
// processed marks of events its copy of the slot is already past: the slot
// synchronization reached the standby, the WAL of the marks did not. The
// slot never streams those events again; the relay notices the promotion
// (a new timeline) and backfills the pending rows at the session's start.
func TestFailoverMarksLostBelowTheSyncedSlot(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	// No redrive sweep: it would find the rows too, minutes later.
	f := newFailoverPair(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_REDRIVE_INTERVAL=0"))
	e := f.e
	relay := e.startRelay()
	e.warmUp()
	f.waitSynced(">=", f.insertLSN())

	e.nats.Shutdown()
	ids, insideLast := e.publishBatch("lost.mark", 20)
	f.cutStandbyStream()
	require.NoError(t, e.nats.Restart())
	f.waitConfirmedPast(insideLast)
	f.waitSynced(">", insideLast) // past the events, over the slot sync's own connection
	require.Equal(t, map[string]int{"pending": len(ids)}, f.statusesOnStandby(ids), "the standby lacks the marks")
	syncedAt := f.syncedSlot().confirmed

	f.failOver()
	e.requireEveryRowDeliveredOnce(time.Minute)
	f.requireResumedFromSyncedSlot(relay, syncedAt)
	assert.Contains(t, relay.out.String(), "promoted")
	// The counters move just after the marks commit: wait for them.
	s := waitMetrics(t, 30*time.Second, addr, func(s scrape) (bool, string) {
		n := s.value(`eventbus_events_published_total{event_type="lost.mark"}`)
		return n >= float64(2*len(ids)), fmt.Sprintf("lost.mark published %v times", n)
	})
	assert.GreaterOrEqual(t, s.value("eventbus_backfill_events_total"), float64(len(ids)), "the pending rows were backfilled")
	assert.Equal(t, float64(2*len(ids)), s.value(`eventbus_events_published_total{event_type="lost.mark"}`),
		"published on the old primary and again on the new one (the stream holds each once)")
	relay.requireRunning()
}

// TestSlotResetKeepsFailover: `eventbus slot reset` with
// EVENTBUS_SLOT_FAILOVER=true recreates the slot as a failover slot.
func TestSlotResetKeepsFailover(t *testing.T) {
	t.Parallel()
	testenv.RequirePostgres(t, 170000)
	e := setup(t, withPostgres(testenv.NewPostgres(t)), withEnv("EVENTBUS_SLOT_FAILOVER=true"))
	ctx := t.Context()
	failover := func() bool {
		var f bool
		require.NoError(t, e.db.QueryRow(ctx, `SELECT failover FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&f))
		return f
	}
	relay := e.startRelay()
	e.warmUp()
	require.True(t, failover(), "the relay creates a failover slot")
	require.Zero(t, relay.stop())
	rep, doc := e.doctor()
	require.Equal(t, "warn", rep.statuses()["failover"], "doctor: %s", doc.stdout)
	require.Contains(t, doc.stdout, "synchronized_standby_slots is empty", "a primary without standbys to wait for")

	r := e.cli("slot", "reset")
	require.Zero(t, r.code, "slot reset: %s%s", r.stdout, r.stderr)
	require.True(t, failover(), "the slot recreated by slot reset is a failover slot")
	// Reset without the option: a plain slot, which doctor flags.
	require.Zero(t, runCLI(t, e.bin, append(e.environ(), "EVENTBUS_SLOT_FAILOVER=false"), "slot", "reset").code)
	require.False(t, failover())
	_, doc = e.doctor()
	require.Contains(t, doc.stdout, "is not a failover slot", "doctor: %s", doc.stdout)
	r = e.cli("slot", "reset")
	require.Zero(t, r.code, "slot reset: %s%s", r.stdout, r.stderr)
	require.True(t, failover(), "slot reset with EVENTBUS_SLOT_FAILOVER=true makes it a failover slot again")

	id := e.publish(ctx, "after.reset", "a-1", `{}`)
	e.startRelay()
	e.waitProcessed(2, 60*time.Second)
	require.True(t, failover())
	var found bool
	for _, m := range e.streamMessages() {
		found = found || m.Body.ID == id
	}
	require.True(t, found, "the relay streams from the reset slot")
}

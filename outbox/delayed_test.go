package outbox

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

const insertMetaSQL = `INSERT INTO public.event_bus (id, event_type, aggregate_type, aggregate_id, metadata)
VALUES ($1, 'test.event', 'test', 'a', $2::jsonb)`

// The relay (event.DeliverAt) and the database (eventbus_deliver_at, the
// index) must agree on which deliver_at are times: an event the relay skips
// as delayed must be one the index holds, or it would wait for ever.
func TestDeliverAtAgreesWithTheDatabase(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	for _, meta := range []string{
		`{}`,
		`{"deliver_at": null}`,
		`{"deliver_at": "2030-01-02T03:04:05Z"}`,
		`{"deliver_at": "2030-01-02T03:04:05.123456789Z"}`,
		`{"deliver_at": "2030-01-02T03:04:05+02:00"}`,
		`{"deliver_at": "2030-01-02T03:04:05-14:59"}`,
		`{"deliver_at": "2030-01-02T03:04:05+15:00"}`,
		`{"deliver_at": "2030-01-02T03:04:05"}`,
		`{"deliver_at": "2030-01-02 03:04:05Z"}`,
		`{"deliver_at": "2030-01-02t03:04:05z"}`,
		`{"deliver_at": "2030-02-30T03:04:05Z"}`,
		`{"deliver_at": "2030-01-02T24:00:00Z"}`,
		`{"deliver_at": "2030-01-02T03:04:60Z"}`,
		`{"deliver_at": "2030-01-02T03:04:05.Z"}`,
		`{"deliver_at": "tomorrow"}`,
		`{"deliver_at": "now"}`,
		`{"deliver_at": 1767225600}`,
		`{"deliver_at": ["2030-01-02T03:04:05Z"]}`,
		`{"Deliver_At": "2030-01-02T03:04:05Z"}`,
		`{"note": "deliver_at"}`,
	} {
		var dbAt *time.Time
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT public.eventbus_deliver_at($1::jsonb)`, meta).Scan(&dbAt), meta)
		// The relay sees metadata as Postgres renders it.
		var rendered string
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT $1::jsonb::text`, meta).Scan(&rendered))
		at, ok, err := event.DeliverAt([]byte(rendered))
		if dbAt == nil {
			assert.False(t, ok, "%s: the database sees no time, the relay must not wait for one", meta)
			continue
		}
		require.NoError(t, err, meta)
		require.True(t, ok, meta)
		assert.True(t, at.Equal(*dbAt), "%s: relay %s, database %s", meta, at, *dbAt)
	}
}

func TestDelayedEventsWaitInEveryPathThatHandsBackPendingRows(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	ctx := t.Context()
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	const (
		waiting = "6f0c1a52-0000-4000-8000-0000000000a1"
		due     = "6f0c1a52-0000-4000-8000-0000000000a2"
		plain   = "6f0c1a52-0000-4000-8000-0000000000a3"
		bad     = "6f0c1a52-0000-4000-8000-0000000000a4"
	)
	for id, meta := range map[string]string{
		waiting: `{"deliver_at": "` + later + `"}`,
		due:     `{"deliver_at": "` + past + `"}`,
		plain:   `{"trigger": "insert"}`,
		bad:     `{"deliver_at": "soon"}`,
	} {
		_, err := pool.Exec(ctx, insertMetaSQL, id, meta)
		require.NoError(t, err)
	}
	all := []string{waiting, due, plain, bad}
	want := []string{due, plain, bad}

	// Backfill.
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	var scanned []string
	_, err = ScanPending(ctx, tx, func(e event.Event) error { scanned = append(scanned, e.ID); return nil })
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	assert.ElementsMatch(t, want, scanned, "backfill")

	// Redrive by ids.
	events, err := store.PendingByIDs(ctx, all)
	require.NoError(t, err)
	var ids []string
	for _, e := range events {
		ids = append(ids, e.ID)
	}
	assert.ElementsMatch(t, want, ids, "redrive by ids")

	// Redrive sweep: everything created before now and not waiting. The
	// delayed event that is due counts as stale from its deliver_at.
	n, err := store.RedriveStuck(ctx, time.Now().Add(time.Minute), 5, 100)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "redrive sweep")
	n, err = store.RedriveStuck(ctx, time.Now().Add(-30*time.Minute), 5, 100)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "a row created now is not stuck")

	// process_pending_events: created 10 s ago.
	_, err = pool.Exec(ctx, `UPDATE public.event_bus SET created_at = now() - interval '10 seconds'`)
	require.NoError(t, err)
	n, err = ProcessPending(ctx, pool, 100)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "process_pending_events leaves the waiting event alone")

	// The release service's queries.
	in, ok, err := store.NextDelayed(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Less(t, in, time.Duration(0), "one is due")
	n, lsn, err := store.ReleaseDue(ctx, 100)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only the due delayed event")
	assert.NotZero(t, lsn)
	_, err = pool.Exec(ctx, `UPDATE public.event_bus SET status = 'processed' WHERE id = $1`, due)
	require.NoError(t, err)
	in, ok, err = store.NextDelayed(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	assert.InDelta(t, time.Hour.Seconds(), in.Seconds(), 60, "the waiting one is due in an hour")
	n, _, err = store.ReleaseDue(ctx, 100)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// The release service finds delayed events through the partial index, not a
// scan of the table.
func TestDelayedQueriesUseTheIndex(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status)
		SELECT 'test.event', 'test', i::text, 'processed' FROM generate_series(1, 20000) i`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ANALYZE public.event_bus`)
	require.NoError(t, err)
	for _, q := range []string{nextDelayedSQL, strings.Replace(dueDelayedSQL, "$1", "100", 1)} {
		rows, err := pool.Query(ctx, "EXPLAIN "+q)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		plan := strings.Join(lines, "\n")
		assert.Contains(t, plan, "event_bus_deliver_at_idx", plan)
	}
}

// The oldest-pending age (and its alert) is about the relay being behind: a
// delayed event waiting is not late, and a due one is late from its
// deliver_at.
func TestBacklogAgeLeavesWaitingDelayedEventsOut(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	ctx := t.Context()
	insert := func(meta string) {
		_, err := pool.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, metadata, created_at)
			VALUES ('test.event', 'test', 'a', $1::jsonb, now() - interval '1 hour')`, meta)
		require.NoError(t, err)
	}
	insert(`{"deliver_at": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`)
	b, err := store.Backlog(ctx)
	require.NoError(t, err)
	assert.Equal(t, float64(1), b.Pending, "counted as pending")
	assert.Zero(t, b.OldestPendingAge, "but not late")

	insert(`{"deliver_at": "` + time.Now().Add(-10*time.Minute).UTC().Format(time.RFC3339) + `"}`)
	b, err = store.Backlog(ctx)
	require.NoError(t, err)
	assert.InDelta(t, 600, b.OldestPendingAge, 30, "late since its deliver_at")

	insert(`{"deliver_at": "soon"}`)
	b, err = store.Backlog(ctx)
	require.NoError(t, err)
	assert.InDelta(t, 3600, b.OldestPendingAge, 30, "a deliver_at that is no time: late since its creation")
}

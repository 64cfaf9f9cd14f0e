package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/internal/testenv"
)

// insertAged inserts n rows of status created age ago and returns their ids.
func insertAged(t *testing.T, pool *pgxpool.Pool, status string, age time.Duration, n int) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status, created_at)
		SELECT 'test.event', 'test', g::text, $1, now() - make_interval(secs => $2)
		FROM generate_series(1, $3) g
		RETURNING id::text`, status, age.Seconds(), n)
	require.NoError(t, err)
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

// countByStatusAndAge counts rows by status, split at cutoff ago: "old
// processed", "new pending"..., "undated processed" when created_at is NULL.
func countByStatusAndAge(t *testing.T, pool *pgxpool.Pool, cutoff time.Duration) map[string]int {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT CASE WHEN created_at IS NULL THEN 'undated ' WHEN created_at < now() - make_interval(secs => $1) THEN 'old ' ELSE 'new ' END || status, count(*)
		FROM public.event_bus GROUP BY 1`, cutoff.Seconds())
	require.NoError(t, err)
	counts := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(t, rows.Scan(&k, &n))
		counts[k] = n
	}
	require.NoError(t, rows.Err())
	return counts
}

func TestPruneDeletesOnlyOldRowsOfTheChosenStatusesInBatches(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	ctx := t.Context()
	const day = 24 * time.Hour
	for _, s := range []string{event.StatusPending, event.StatusProcessing, event.StatusProcessed, event.StatusFailed} {
		insertAged(t, pool, s, 40*day, 25)
		insertAged(t, pool, s, 10*day, 5)
	}
	_, err := pool.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status, created_at)
		VALUES ('test.event', 'test', 'no-date', 'processed', NULL)`)
	require.NoError(t, err)

	n, err := store.Prunable(ctx, 30*day, []string{event.StatusProcessed})
	require.NoError(t, err)
	assert.EqualValues(t, 25, n, "dry run count")

	// 25 rows in batches of 7: four DELETEs, the last one short.
	n, err = store.Prune(ctx, 30*day, []string{event.StatusProcessed}, 7)
	require.NoError(t, err)
	assert.EqualValues(t, 25, n)
	assert.Equal(t, map[string]int{
		"new processed": 5, "new failed": 5, "old failed": 25,
		"new pending": 5, "old pending": 25, "new processing": 5, "old processing": 25,
	}, withoutNull(countByStatusAndAge(t, pool, 30*day)))

	n, err = store.Prune(ctx, 30*day, []string{event.StatusProcessed, event.StatusFailed}, 10)
	require.NoError(t, err)
	assert.EqualValues(t, 25, n, "the old failed rows; no processed row is old any more")

	// A batch that divides the count exactly ends with an empty DELETE.
	n, err = store.Prune(ctx, 5*day, []string{event.StatusProcessed, event.StatusFailed}, 5)
	require.NoError(t, err)
	assert.EqualValues(t, 10, n)
	assert.Equal(t, map[string]int{
		"new pending": 5, "old pending": 25, "new processing": 5, "old processing": 25,
	}, withoutNull(countByStatusAndAge(t, pool, 30*day)))

	var nullKept int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM public.event_bus WHERE created_at IS NULL`).Scan(&nullKept))
	assert.Equal(t, 1, nullKept, "a row without created_at is not pruned")
}

// withoutNull drops the group of rows whose created_at is NULL.
func withoutNull(m map[string]int) map[string]int {
	delete(m, "undated processed")
	return m
}

func TestPruneRefusesPendingAndProcessing(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	insertAged(t, pool, event.StatusPending, 48*time.Hour, 3)
	insertAged(t, pool, event.StatusProcessing, 48*time.Hour, 3)
	for _, statuses := range [][]string{{event.StatusPending}, {event.StatusProcessed, event.StatusProcessing}, {"bogus"}, nil} {
		n, err := store.Prune(t.Context(), time.Hour, statuses, 10)
		require.ErrorIs(t, err, ErrPruneStatus, "%v", statuses)
		assert.Zero(t, n)
		_, err = store.Prunable(t.Context(), time.Hour, statuses)
		require.ErrorIs(t, err, ErrPruneStatus, "%v", statuses)
	}
	assert.Equal(t, map[string]int{"old pending": 3, "old processing": 3}, countByStatusAndAge(t, pool, time.Hour))
}

// A row locked by another session (process_pending_events handing a failed
// row back) is passed over, not waited for, and kept if it turns pending.
func TestPruneSkipsLockedRowsAndKeepsRowsTurnedPending(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	ctx := t.Context()
	ids := insertAged(t, pool, event.StatusFailed, 48*time.Hour, 4)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, `UPDATE public.event_bus SET status = 'pending' WHERE id = $1`, ids[0])
	require.NoError(t, err)

	pruneCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := store.Prune(pruneCtx, time.Hour, []string{event.StatusFailed}, 2)
	require.NoError(t, err, "prune does not wait for the locked row")
	assert.EqualValues(t, 3, n)
	require.NoError(t, tx.Commit(ctx))

	n, err = store.Prune(ctx, time.Hour, []string{event.StatusFailed}, 2)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, map[string]int{"old pending": 1}, countByStatusAndAge(t, pool, time.Hour))
}

func TestRetentionPrunesProcessedRowsUntilStopped(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	insertAged(t, pool, event.StatusProcessed, 3*time.Hour, 12)
	insertAged(t, pool, event.StatusFailed, 3*time.Hour, 2)
	insertAged(t, pool, event.StatusPending, 3*time.Hour, 2)
	insertAged(t, pool, event.StatusProcessed, time.Minute, 2)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	r := Retention{Store: store, Age: 2 * time.Hour, Interval: 10 * time.Millisecond, Batch: 5, Log: testenv.Logger(t)}
	go func() { done <- r.Run(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for countByStatusAndAge(t, pool, 2*time.Hour)["old processed"] > 0 {
		require.False(t, time.Now().After(deadline), "old processed rows still there after 10s")
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, map[string]int{"old failed": 2, "old pending": 2, "new processed": 2}, countByStatusAndAge(t, pool, 2*time.Hour))

	require.Error(t, Retention{Store: store}.Run(t.Context()), "retention without an age")
}

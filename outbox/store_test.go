package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
	"github.com/eventbus/eventbus/schema"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newStore(t *testing.T) (*Store, *pgxpool.Pool) {
	t.Helper()
	url := testenv.Postgres(t)
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	_, err = schema.Migrate(t.Context(), conn, nil)
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
	pool, err := pgxpool.New(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return NewStore(pool), pool
}

const insertSQL = `INSERT INTO public.event_bus (id, event_type, aggregate_type, aggregate_id) VALUES ($1, 'test.event', 'test', 'a')`

func status(t *testing.T, pool *pgxpool.Pool, id string) (status string, retries int, processedAt *time.Time) {
	t.Helper()
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT status, retry_count, processed_at FROM public.event_bus WHERE id = $1`, id).Scan(&status, &retries, &processedAt))
	return status, retries, processedAt
}

// The replication stream can deliver a row a moment before the database
// shows it to other sessions; the status write must wait for it, not miss it.
func TestMarkProcessedWaitsForRowsNotVisibleYet(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	visible, late := "6f0c1a52-0000-4000-8000-000000000001", "6f0c1a52-0000-4000-8000-000000000002"
	_, err := pool.Exec(t.Context(), insertSQL, visible)
	require.NoError(t, err)

	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = pool.Exec(context.Background(), insertSQL, late)
	}()
	require.NoError(t, store.MarkProcessed(t.Context(), []string{visible, late}))
	for _, id := range []string{visible, late} {
		st, _, at := status(t, pool, id)
		assert.Equal(t, StatusProcessed, st, id)
		assert.NotNil(t, at, id)
	}
}

func TestMarkProcessedKeepsProcessedAtOfProcessedRows(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	id := "6f0c1a52-0000-4000-8000-000000000003"
	_, err := pool.Exec(t.Context(), insertSQL, id)
	require.NoError(t, err)
	require.NoError(t, store.MarkProcessed(t.Context(), []string{id}))
	_, _, first := status(t, pool, id)
	require.NoError(t, store.MarkProcessed(t.Context(), []string{id, id}), "a second mark, a duplicate id: no error, no wait")
	_, _, second := status(t, pool, id)
	assert.Equal(t, first, second)
}

func TestMarkProcessedReportsRowsThatNeverAppear(t *testing.T) {
	store, _ := newStore(t)
	old := visibilityWait
	visibilityWait = 200 * time.Millisecond
	t.Cleanup(func() { visibilityWait = old })
	err := store.MarkProcessed(t.Context(), []string{"6f0c1a52-0000-4000-8000-0000000000ff"})
	assert.ErrorIs(t, err, ErrInvisible)
}

func TestRecordFailureCountsAttemptsAndWaitsForTheRow(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	id := "6f0c1a52-0000-4000-8000-000000000004"
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = pool.Exec(context.Background(), insertSQL, id)
	}()
	failed, err := store.RecordFailure(t.Context(), id, "first", 2)
	require.NoError(t, err)
	assert.False(t, failed)
	st, retries, _ := status(t, pool, id)
	assert.Equal(t, StatusPending, st)
	assert.Equal(t, 1, retries)

	failed, err = store.RecordFailure(t.Context(), id, "second", 2)
	require.NoError(t, err)
	assert.True(t, failed, "retries used up")
	st, retries, _ = status(t, pool, id)
	assert.Equal(t, StatusFailed, st)
	assert.Equal(t, 2, retries)
	var msg string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT error_message FROM public.event_bus WHERE id = $1`, id).Scan(&msg))
	assert.Equal(t, "second", msg)
}

func TestRecordFailureOfAProcessedEventIsANoOp(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	id := "6f0c1a52-0000-4000-8000-000000000005"
	_, err := pool.Exec(t.Context(), insertSQL, id)
	require.NoError(t, err)
	require.NoError(t, store.MarkProcessed(t.Context(), []string{id}))
	failed, err := store.RecordFailure(t.Context(), id, "late error", 5)
	require.NoError(t, err)
	assert.True(t, failed, "nothing left to retry")
	st, retries, _ := status(t, pool, id)
	assert.Equal(t, StatusProcessed, st)
	assert.Zero(t, retries)
}

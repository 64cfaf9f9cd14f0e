package outbox

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/internal/testenv"
	"github.com/eventbus/eventbus/internal/testenv/testdb"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newStore(t *testing.T) (*Store, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.MigratedPool(t)
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
// Here the inserting transaction is still open when the write starts, which
// the status write cannot tell apart from one that is committing.
func TestMarkProcessedWaitsForRowsOfATransactionStillCommitting(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	visible, late := "6f0c1a52-0000-4000-8000-000000000001", "6f0c1a52-0000-4000-8000-000000000002"
	_, err := pool.Exec(t.Context(), insertSQL, visible)
	require.NoError(t, err)

	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), insertSQL, late)
	require.NoError(t, err)
	var xid int64
	require.NoError(t, tx.QueryRow(t.Context(), `SELECT pg_current_xact_id()::text::int8 & 4294967295`).Scan(&xid))
	committed := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		committed <- tx.Commit(context.Background())
	}()

	require.NoError(t, store.MarkProcessed(t.Context(), []Mark{{ID: visible}, {ID: late, Xid: uint32(xid)}}))
	require.NoError(t, <-committed)
	for _, id := range []string{visible, late} {
		st, _, at := status(t, pool, id)
		assert.Equal(t, event.StatusProcessed, st, id)
		assert.NotNil(t, at, id)
	}
}

func TestMarkProcessedKeepsProcessedAtOfProcessedRows(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	id := "6f0c1a52-0000-4000-8000-000000000003"
	_, err := pool.Exec(t.Context(), insertSQL, id)
	require.NoError(t, err)
	require.NoError(t, store.MarkProcessed(t.Context(), []Mark{{ID: id}}))
	_, _, first := status(t, pool, id)
	require.NoError(t, store.MarkProcessed(t.Context(), []Mark{{ID: id}, {ID: id}}), "a second mark, a duplicate id: no error, no wait")
	_, _, second := status(t, pool, id)
	assert.Equal(t, first, second)
}

// A row deleted before it was marked (a cleanup job, a TRUNCATE) must not
// hold up the status writes: its transaction is long committed, so there is
// nothing to wait for. The other rows of the batch are marked.
func TestMarkProcessedReportsDeletedRowsWithoutWaiting(t *testing.T) {
	store, pool := newStore(t)
	old := visibilityWait
	visibilityWait = time.Hour // a wait would time the test out
	t.Cleanup(func() { visibilityWait = old })

	kept, deleted := "6f0c1a52-0000-4000-8000-0000000000fe", "6f0c1a52-0000-4000-8000-0000000000ff"
	var xid int64
	require.NoError(t, pool.QueryRow(t.Context(), `WITH i AS (`+insertSQL+` RETURNING id)
		SELECT pg_current_xact_id()::text::int8 & 4294967295 FROM i`, deleted).Scan(&xid))
	_, err := pool.Exec(t.Context(), insertSQL, kept)
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `DELETE FROM public.event_bus WHERE id = $1`, deleted)
	require.NoError(t, err)

	err = store.MarkProcessed(t.Context(), []Mark{{ID: deleted, Xid: uint32(xid)}, {ID: kept, Xid: uint32(xid) + 1}, {ID: "6f0c1a52-0000-4000-8000-0000000000fd"}})
	require.ErrorIs(t, err, ErrInvisible)
	assert.Contains(t, err.Error(), "2 of them")
	st, _, _ := status(t, pool, kept)
	assert.Equal(t, event.StatusProcessed, st)
}

func TestRecordFailureCountsAttemptsAndWaitsForTheRow(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	id := "6f0c1a52-0000-4000-8000-000000000004"
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = pool.Exec(context.Background(), insertSQL, id)
	}()
	failed, err := store.RecordFailure(t.Context(), id, 0, "first", 2)
	require.NoError(t, err)
	assert.False(t, failed)
	st, retries, _ := status(t, pool, id)
	assert.Equal(t, event.StatusPending, st)
	assert.Equal(t, 1, retries)

	failed, err = store.RecordFailure(t.Context(), id, 0, "second", 2)
	require.NoError(t, err)
	assert.True(t, failed, "retries used up")
	st, retries, _ = status(t, pool, id)
	assert.Equal(t, event.StatusFailed, st)
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
	require.NoError(t, store.MarkProcessed(t.Context(), []Mark{{ID: id}}))
	failed, err := store.RecordFailure(t.Context(), id, 0, "late error", 5)
	require.NoError(t, err)
	assert.True(t, failed, "nothing left to retry")
	st, retries, _ := status(t, pool, id)
	assert.Equal(t, event.StatusProcessed, st)
	assert.Zero(t, retries)
}

func TestFullXidIsTheNearestToXmax(t *testing.T) {
	const epoch = uint64(7) << 32
	for _, c := range []struct {
		xmax uint64
		xid  uint32
		want uint64
	}{
		{xmax: 1000, xid: 990, want: 990},
		{xmax: 1000, xid: 1003, want: 1003},                  // still committing: above xmax
		{xmax: epoch + 5, xid: 0xFFFFFFF0, want: epoch - 16}, // previous epoch
		{xmax: epoch - 3, xid: 2, want: epoch + 2},           // next epoch, committing
		{xmax: epoch + 1<<20, xid: 1 << 20, want: epoch + 1<<20},
		{xmax: 1000, xid: 0, want: 0},
	} {
		assert.Equal(t, c.want, fullXid(c.xmax, c.xid), "xmax %d xid %d", c.xmax, c.xid)
	}
}

// Status writes racing the commits of their rows' transactions, at varied
// offsets: every row ends processed, none is taken for deleted. (The narrow
// race where a transaction ends between the lookup's snapshot and its
// pg_xact_status call, seen under benchmark load, is rarely hit here; the
// second lookup that guards against it is explained in MarkProcessed.)
func TestMarkProcessedRacingCommitsMarksEveryRow(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	for i := range 100 {
		id := fmt.Sprintf("6f0c1a52-0000-4000-8001-%012d", i)
		tx, err := pool.Begin(t.Context())
		require.NoError(t, err)
		_, err = tx.Exec(t.Context(), insertSQL, id)
		require.NoError(t, err)
		var xid int64
		require.NoError(t, tx.QueryRow(t.Context(), `SELECT pg_current_xact_id()::text::int8 & 4294967295`).Scan(&xid))
		committed := make(chan error, 1)
		go func() {
			time.Sleep(time.Duration(i%7) * 200 * time.Microsecond)
			committed <- tx.Commit(context.Background())
		}()
		require.NoError(t, store.MarkProcessed(t.Context(), []Mark{{ID: id, Xid: uint32(xid)}}), "row %d", i)
		require.NoError(t, <-committed)
		st, _, _ := status(t, pool, id)
		require.Equal(t, event.StatusProcessed, st, "row %d", i)
	}
}

// A rejected row of a transaction still committing is waited for as long as
// the transaction runs, not given up on after visibilityWait (under
// synchronous replication a commit can take longer): the attempt is counted.
func TestRecordFailureWaitsForATransactionStillCommitting(t *testing.T) {
	store, pool := newStore(t)
	old := visibilityWait
	visibilityWait = 50 * time.Millisecond
	t.Cleanup(func() { visibilityWait = old })

	id := "6f0c1a52-0000-4000-8000-000000000006"
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), insertSQL, id)
	require.NoError(t, err)
	var xid int64
	require.NoError(t, tx.QueryRow(t.Context(), `SELECT pg_current_xact_id()::text::int8 & 4294967295`).Scan(&xid))
	committed := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // well past visibilityWait
		committed <- tx.Commit(context.Background())
	}()
	failed, err := store.RecordFailure(t.Context(), id, uint32(xid), "refused", 5)
	require.NoError(t, err)
	require.NoError(t, <-committed)
	assert.False(t, failed)
	_, retries, _ := status(t, pool, id)
	assert.Equal(t, 1, retries)

	// A row deleted after its transaction committed is reported at once.
	_, err = pool.Exec(t.Context(), `DELETE FROM public.event_bus WHERE id = $1`, id)
	require.NoError(t, err)
	_, err = store.RecordFailure(t.Context(), id, uint32(xid), "refused", 5)
	require.ErrorIs(t, err, ErrInvisible)
}

package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The seed's status and created_at are nullable, and a NULL status is
// pending everywhere (0010): process_pending_events hands such rows back
// too. Before 0012 it took only status = 'pending' rows with a created_at,
// so a NULL-status or NULL-created_at row was never redriven.
func TestRedriveHandsBackRowsWithNullStatusOrCreatedAt(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()

	insert := func(status, createdAt string) string {
		var id string
		require.NoError(t, conn.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status, created_at)
			VALUES ('test.event', 'test', 'a', `+status+`, `+createdAt+`) RETURNING id::text`).Scan(&id))
		return id
	}
	stale := `now() - interval '1 hour'`
	want := []string{
		insert("NULL", stale),
		insert("'pending'", "NULL"),
		insert("NULL", "NULL"),
		insert("'processing'", "NULL"),
		insert("'failed'", "NULL"),
	}
	fresh := insert("NULL", "now()") // may still be on its way
	processed := insert("'processed'", "NULL")

	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&n))
	assert.Equal(t, len(want), n, "rows handed back")

	rows, err := conn.Query(ctx, `SELECT id::text FROM public.event_bus
		WHERE id = ANY($1::uuid[]) AND coalesce(status, 'pending') = 'pending' ORDER BY id`, append(want, fresh))
	require.NoError(t, err)
	pending, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.ElementsMatch(t, append(want, fresh), pending, "handed back rows are pending; the fresh one still is")

	var status string
	require.NoError(t, conn.QueryRow(ctx, `SELECT status FROM public.event_bus WHERE id = $1`, processed).Scan(&status))
	assert.Equal(t, "processed", status)
}

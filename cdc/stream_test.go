package cdc

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// The snapshot a new slot exports is what the relay's backfill reads: Open
// must return it still importable (it lives only until the replication
// connection's next command), with the server's timeline.
func TestOpenNewSlotExportsAnImportableSnapshot(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	ctx := t.Context()
	for i := range 3 {
		slot := testenv.UniqueName(t, "slot")
		s, err := Open(ctx, dsn, Options{Slot: slot, Publication: "unused", Log: testenv.Logger(t)})
		require.NoError(t, err)
		got := s.Slot()
		assert.True(t, got.Created, "attempt %d", i)
		assert.NotEmpty(t, got.SnapshotName)
		assert.Equal(t, int32(1), got.Timeline, "a server never promoted is on timeline 1")
		assert.Regexp(t, `^\d+(\.\d+)?`, s.ServerVersion())

		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+got.SnapshotName+"'")
		assert.NoError(t, err, "attempt %d: import the slot's snapshot", i)
		require.NoError(t, tx.Rollback(ctx))
		require.NoError(t, conn.Close(ctx))

		require.NoError(t, s.Close(ctx))
		drop, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		_, err = drop.Exec(context.Background(), "SELECT pg_drop_replication_slot($1)", slot)
		require.NoError(t, err)
		require.NoError(t, drop.Close(ctx))
	}
}

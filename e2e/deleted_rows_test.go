package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Rows deleted after their insert was written to the WAL (a cleanup job, a
// TRUNCATE of pending rows) are still published from the stream, and their
// status writes find nothing to mark. That must not hold the relay up: a
// status write waits for a missing row only while its transaction is still
// committing. (It used to wait 5 s per batch: 10,000 deleted rows stalled the
// relay for ~25 s before a later event could be marked.)
func TestRowsDeletedBeforeMarkingDoNotStallTheRelay(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	p := e.startRelay()
	e.waitSlotActive(true)
	require.Equal(t, 0, p.stop())

	// 10,000 events in 100 transactions while the relay is down, then gone.
	for i := range 100 {
		_, err := e.db.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id)
			SELECT 'test.deleted', 'test', $1::int || '-' || g FROM generate_series(1, 100) AS g`, i)
		require.NoError(t, err)
	}
	_, err := e.db.Exec(ctx, `DELETE FROM public.event_bus`)
	require.NoError(t, err)

	p = e.startRelay()
	e.waitSlotActive(true)
	after := e.publish(ctx, "test.after", "a-1", `{}`)
	// Generous for a loaded machine, and well below the old stall.
	e.waitProcessed(1, 10*time.Second)

	var status string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT status FROM public.event_bus WHERE id = $1`, after).Scan(&status))
	assert.Equal(t, "processed", status)
	assert.Equal(t, 10_001, e.streamCount(), "the deleted rows' events were in the WAL and are delivered; nothing is lost")
	assert.Contains(t, p.out.String(), "acked events not found in event_bus")
	require.Equal(t, 0, p.stop())
}

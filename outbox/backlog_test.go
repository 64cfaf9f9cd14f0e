package outbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

func TestBacklogCountsPendingAndFailedRowsAndTheOldestAge(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	b, err := store.Backlog(t.Context())
	require.NoError(t, err)
	assert.Equal(t, Backlog{}, b, "an empty table")

	now := time.Now()
	insertEvent(t, pool, orgA, event.StatusPending, "a.b", "1", now.Add(-time.Hour))
	insertEvent(t, pool, orgA, event.StatusPending, "a.b", "2", now)
	insertEvent(t, pool, orgA, event.StatusFailed, "a.b", "3", now.Add(-48*time.Hour))
	insertEvent(t, pool, orgA, event.StatusProcessed, "a.b", "4", now.Add(-72*time.Hour))
	b, err = store.Backlog(t.Context())
	require.NoError(t, err)
	assert.Equal(t, float64(2), b.Pending)
	assert.Equal(t, float64(1), b.Failed, "failed rows of any age")
	assert.InDelta(t, time.Hour.Seconds(), b.OldestPendingAge, 60, "the oldest pending row, in seconds")

	_, err = pool.Exec(t.Context(), `UPDATE public.event_bus SET created_at = now() + interval '1 hour' WHERE status = 'pending'`)
	require.NoError(t, err)
	b, err = store.Backlog(t.Context())
	require.NoError(t, err)
	assert.Zero(t, b.OldestPendingAge, "a created_at in the future is age 0")
}

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The relay's sweep hands back rows that should have been delivered by now:
// a row set back to pending behind the relay's back (updates are not
// streamed), and a failed row with retries left.
func TestSweepRedrivesStuckRows(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_REDRIVE_INTERVAL=300ms", "EVENTBUS_REDRIVE_AFTER=1s"))
	e.startRelay()
	ctx := t.Context()

	stuck := e.publish(ctx, "sweep.stuck", "s-1", `{}`)
	e.waitProcessed(1, 30*time.Second)
	_, err := e.db.Exec(ctx, `UPDATE public.event_bus SET status = 'pending', processed_at = NULL,
		created_at = now() - interval '1 hour' WHERE id = $1`, stuck)
	require.NoError(t, err)

	var retryable string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status, retry_count, error_message, created_at)
		VALUES ('sweep.retryable', 'test', 's-2', 'failed', 1, 'earlier failure', now() - interval '1 hour') RETURNING id::text`).Scan(&retryable))
	var exhausted string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status, retry_count, error_message, created_at)
		VALUES ('sweep.exhausted', 'test', 's-3', 'failed', 5, 'gave up', now() - interval '1 hour') RETURNING id::text`).Scan(&exhausted))

	// Newer commits move the confirmed time past the stuck rows' margin.
	e.publish(ctx, "sweep.marker", "m", `{}`)
	eventually(t, 30*time.Second, func() (bool, string) {
		c := e.statusCounts()
		return c["processed"] == 3 && c["pending"] == 0, fmt.Sprintf("statuses %v", c)
	})
	for _, id := range []string{stuck, retryable} {
		assert.Equal(t, "processed", e.eventRow(ctx, id).Status, id)
	}
	assert.Equal(t, "failed", e.eventRow(ctx, exhausted).Status, "a row with no retries left stays failed")

	var subjects []string
	for _, m := range e.streamMessages() {
		subjects = append(subjects, m.Subject)
	}
	assert.Contains(t, subjects, "events.sweep.retryable", "the retryable row was published")
	assert.NotContains(t, subjects, "events.sweep.exhausted")
}

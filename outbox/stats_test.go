package outbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

func TestCountPerMinuteCoversTheLastHour(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	now := time.Now()
	insertEvent(t, pool, orgA, event.StatusPending, "a.b", "1", now)
	insertEvent(t, pool, orgA, event.StatusProcessed, "a.b", "2", now.Add(-30*time.Minute))
	insertEvent(t, pool, orgA, event.StatusFailed, "a.b", "3", now.Add(-2*time.Hour)) // outside the hour

	minutes, err := CountPerMinute(t.Context(), pool)
	require.NoError(t, err)
	require.Len(t, minutes, 60)
	var pending, processed, failed int
	for i, m := range minutes {
		assert.Equal(t, time.UTC, m.Minute.Location())
		assert.Equal(t, m.Minute, m.Minute.Truncate(time.Minute), "a whole minute")
		if i > 0 {
			assert.Equal(t, time.Minute, m.Minute.Sub(minutes[i-1].Minute), "minutes in order, none missing")
		}
		pending, processed, failed = pending+m.Pending, processed+m.Processed, failed+m.Failed
	}
	assert.Equal(t, []int{1, 1, 0}, []int{pending, processed, failed})
}

package outbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

// Analyze counts each type by status in its bucket, measures created_at to
// processed_at of processed events only, and ranks aggregates and
// organizations; rows outside the window count nowhere.
func TestAnalyzeCountsBucketsLatencyAndBusiest(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	now := time.Date(2026, 11, 30, 15, 30, 0, 0, time.UTC)
	at := func(hoursAgo float64) time.Time { return now.Add(-time.Duration(hoursAgo * float64(time.Hour))) }
	type row struct {
		org, status, eventType, aggregateID string
		created                             time.Time
		latency                             time.Duration // processed_at - created_at when processed
	}
	rows := []row{
		{orgA, event.StatusProcessed, "lead.created", "lead-1", at(0.1), 10 * time.Millisecond},        // 15:24, current bucket
		{orgA, event.StatusProcessed, "lead.created", "lead-1", at(0.2), 20 * time.Millisecond},        // 15:18
		{orgA, event.StatusFailed, "lead.created", "lead-2", at(0.3), 0},                               // 15:12
		{orgB, event.StatusProcessed, "payment.completed", "pay-1", at(1), 30 * time.Millisecond},      // 14:30
		{"", event.StatusPending, "lead.created", "lead-1", at(1.2), 0},                                // 14:18
		{orgB, event.StatusProcessed, "payment.completed", "pay-1", at(23.4), 4000 * time.Millisecond}, // 16:06 yesterday, first bucket
		{orgA, event.StatusProcessed, "lead.created", "lead-9", at(23.6), time.Second},                 // 15:54 yesterday: before the window
		{orgA, event.StatusProcessed, "lead.created", "lead-9", now.Add(time.Hour), time.Second},       // after it
	}
	for _, r := range rows {
		var org any
		if r.org != "" {
			org = r.org
		}
		var processedAt any
		if r.status == event.StatusProcessed {
			processedAt = r.created.Add(r.latency)
		}
		_, err := pool.Exec(t.Context(), `INSERT INTO public.event_bus
			(event_type, aggregate_type, aggregate_id, organization_id, status, created_at, processed_at)
			VALUES ($1, 'test', $2, $3::uuid, $4, $5, $6)`, r.eventType, r.aggregateID, org, r.status, r.created, processedAt)
		require.NoError(t, err)
	}

	a, err := Analyze(t.Context(), pool, now, time.Hour, 24, 2)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 11, 29, 16, 0, 0, 0, time.UTC), a.Since)
	assert.Equal(t, time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC), a.Until)
	require.Len(t, a.Buckets, 24)
	for i, b := range a.Buckets {
		assert.Equal(t, a.Since.Add(time.Duration(i)*time.Hour), b.Start, "bucket %d", i)
	}
	assert.Equal(t, []TypeCounts{{EventType: "payment.completed", Processed: 1}}, a.Buckets[0].Types)
	assert.Equal(t, []TypeCounts{{EventType: "lead.created", Pending: 1}, {EventType: "payment.completed", Processed: 1}}, a.Buckets[22].Types)
	assert.Equal(t, []TypeCounts{{EventType: "lead.created", Processed: 2, Failed: 1}}, a.Buckets[23].Types)
	for _, b := range a.Buckets[1:22] {
		assert.Empty(t, b.Types, "bucket %s", b.Start)
	}

	assert.Equal(t, 4, a.Latency.Count)
	// percentile_cont over 10, 20, 30, 4000 ms.
	assert.Equal(t, 25*time.Millisecond, a.Latency.P50)
	assert.InDelta(t, float64(3404500*time.Microsecond), float64(a.Latency.P95), float64(time.Millisecond))
	assert.InDelta(t, float64(3880900*time.Microsecond), float64(a.Latency.P99), float64(time.Millisecond))

	assert.Equal(t, []AggregateCount{{"test", "lead-1", 3}, {"test", "pay-1", 2}}, a.BusiestAggregates)
	assert.Equal(t, []OrganizationCount{{orgA, 3}, {orgB, 2}}, a.BusiestOrganizations)

	a, err = Analyze(t.Context(), pool, now, time.Hour, 24, 10)
	require.NoError(t, err)
	assert.Equal(t, []OrganizationCount{{orgA, 3}, {orgB, 2}, {"", 1}}, a.BusiestOrganizations, "events without organization count too")

	// An empty window: every bucket, nothing in them, no latency.
	a, err = Analyze(t.Context(), pool, now.Add(-72*time.Hour), time.Minute, 60, 10)
	require.NoError(t, err)
	require.Len(t, a.Buckets, 60)
	assert.Zero(t, a.Latency)
	assert.Empty(t, a.BusiestAggregates)
	assert.Empty(t, a.BusiestOrganizations)
}

package monitor

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// insertProcessed stores a processed event whose delivery took latency.
func (e *env) insertProcessed(t *testing.T, org, eventType, aggregateID string, createdAt time.Time, latency time.Duration) {
	t.Helper()
	id := e.insert(t, org, "processed", eventType, aggregateID, createdAt)
	_, err := e.pool.Exec(t.Context(), `UPDATE public.event_bus SET processed_at = created_at + $2::interval WHERE id = $1`, id, latency.String())
	require.NoError(t, err)
}

func TestAnalytics(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	e.insertProcessed(t, orgA, "lead.created", "lead-1", now.Add(-10*time.Minute), 10*time.Millisecond)
	e.insertProcessed(t, orgA, "lead.created", "lead-1", now.Add(-20*time.Minute), 30*time.Millisecond)
	e.insertProcessed(t, orgB, "payment.completed", "pay-1", now.Add(-3*time.Hour), 50*time.Millisecond)
	e.insert(t, orgA, "failed", "lead.created", "lead-2", now.Add(-5*time.Hour))
	e.insert(t, orgB, "pending", "payment.completed", "pay-1", now.Add(-30*time.Minute))
	e.insert(t, orgA, "processed", "lead.created", "lead-old", now.Add(-48*time.Hour)) // outside 24 h, inside 7 d

	status, body := e.call(t, "GET", "/api/analytics", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "24h", body["window"], "the default window")
	assert.Equal(t, float64(3600), body["bucket_seconds"])
	buckets := body["buckets"].([]any)
	require.Len(t, buckets, 24)
	since, err := time.Parse(time.RFC3339, body["since"].(string))
	require.NoError(t, err)
	until, err := time.Parse(time.RFC3339, body["until"].(string))
	require.NoError(t, err)
	assert.Equal(t, 24*time.Hour, until.Sub(since))
	assert.True(t, until.After(now), "the last bucket holds now")
	counted := map[string]float64{}
	for _, b := range buckets {
		for _, ty := range b.(map[string]any)["types"].([]any) {
			tc := ty.(map[string]any)
			counted[tc["event_type"].(string)] += tc["total"].(float64)
		}
	}
	assert.Equal(t, map[string]float64{"lead.created": 3, "payment.completed": 2}, counted)
	assert.Equal(t, map[string]any{"pending": 1.0, "processing": 0.0, "processed": 3.0, "failed": 1.0, "total": 5.0}, body["totals"])
	assert.InDelta(t, 0.25, body["failure_rate"], 1e-9, "1 failed of the 4 that ended")
	types := body["event_types"].([]any)
	require.Len(t, types, 2)
	lead := types[0].(map[string]any)
	assert.Equal(t, "lead.created", lead["event_type"], "most events first")
	assert.InDelta(t, 1.0/3, lead["failure_rate"], 1e-9)
	latency := body["latency_ms"].(map[string]any)
	assert.Equal(t, 3.0, latency["count"])
	assert.InDelta(t, 30, latency["p50"], 0.01)
	assert.InDelta(t, 48, latency["p95"], 0.01)
	assert.InDelta(t, 49.6, latency["p99"], 0.01)
	assert.Equal(t, []any{
		map[string]any{"aggregate_type": "test", "aggregate_id": "lead-1", "count": 2.0},
		map[string]any{"aggregate_type": "test", "aggregate_id": "pay-1", "count": 2.0},
		map[string]any{"aggregate_type": "test", "aggregate_id": "lead-2", "count": 1.0},
	}, body["busiest_aggregates"])
	assert.Equal(t, []any{
		map[string]any{"organization_id": orgA, "count": 3.0},
		map[string]any{"organization_id": orgB, "count": 2.0},
	}, body["busiest_organizations"])

	status, body = e.call(t, "GET", "/api/analytics?window=7d", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Len(t, body["buckets"].([]any), 28)
	assert.Equal(t, 6.0, body["totals"].(map[string]any)["total"])
	for window, n := range map[string]int{"1h": 60, "30d": 30} {
		status, body = e.call(t, "GET", "/api/analytics?window="+window, adminToken, nil)
		require.Equal(t, http.StatusOK, status, body)
		assert.Len(t, body["buckets"].([]any), n, window)
	}
	status, body = e.call(t, "GET", "/api/analytics?window=1h", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, 3.0, body["totals"].(map[string]any)["total"], "the last hour")

	for _, bad := range []string{"2h", "24H", "1d", "week"} {
		status, body = e.call(t, "GET", "/api/analytics?window="+bad, adminToken, nil)
		assert.Equal(t, http.StatusBadRequest, status, bad)
		assert.Contains(t, body["error"], "window", bad)
	}
}

// An organization's admin counts only their organization's events.
func TestAnalyticsAsAnOrganizationAdmin(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	e.insertProcessed(t, orgA, "lead.created", "lead-1", now.Add(-time.Hour), 10*time.Millisecond)
	e.insertProcessed(t, orgB, "lead.created", "lead-2", now.Add(-time.Hour), 900*time.Millisecond)
	e.insertProcessed(t, orgB, "payment.completed", "pay-1", now.Add(-time.Hour), 900*time.Millisecond)
	e.insert(t, "", "failed", "lead.created", "lead-3", now.Add(-time.Hour))

	status, body := e.call(t, "GET", "/api/analytics", userJWT(t, adminA), nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, 1.0, body["totals"].(map[string]any)["total"])
	assert.Equal(t, 0.0, body["failure_rate"])
	assert.InDelta(t, 10, body["latency_ms"].(map[string]any)["p99"], 0.01, "B's slow deliveries are not A's")
	assert.Equal(t, []any{map[string]any{"aggregate_type": "test", "aggregate_id": "lead-1", "count": 1.0}}, body["busiest_aggregates"])
	assert.Equal(t, []any{map[string]any{"organization_id": orgA, "count": 1.0}}, body["busiest_organizations"])

	status, body = e.call(t, "GET", "/api/analytics", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, 4.0, body["totals"].(map[string]any)["total"])
	assert.Contains(t, body["busiest_organizations"], map[string]any{"organization_id": nil, "count": 1.0})
	assert.InDelta(t, 0.25, body["failure_rate"], 1e-9, "the admin token counts the event without organization")
}

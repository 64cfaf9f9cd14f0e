package monitor

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every nullable column of the seed's event_bus may be NULL in an adopted
// table: the API shows such a row, with null for a created_at it does not
// know (not year 1), and the rest as before: {} for payload and metadata,
// pending for the status, 0 retries.
func TestRowWithNullColumns(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.insertRow(t, "l-null", nil, nil, nil, nil, nil, nil, nil, nil)

	want := map[string]any{
		"id": id, "event_type": "lead.created", "aggregate_type": "lead", "aggregate_id": "l-null",
		"organization_id": nil, "payload": map[string]any{}, "metadata": map[string]any{},
		"status": "pending", "created_at": nil, "processed_at": nil, "retry_count": float64(0), "error_message": nil,
	}
	status, body := e.call(t, "GET", "/api/events/"+id, adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, want, body, "the detail")

	status, body = e.call(t, "GET", "/api/events", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	events, _ := body["events"].([]any)
	require.Len(t, events, 1, body)
	assert.Equal(t, want, events[0], "the list")

	status, body = e.call(t, "GET", "/api/stats", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, float64(0), body["total"], "a row of unknown time is in no window")
}

// A row with every column set reads exactly as it always has.
func TestRowJSONUnchanged(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.insertRow(t, "l-1", `{"n": 1, "name": "Ada"}`, `{"trigger": "insert"}`, orgA, "processed",
		"2026-11-26 15:07:50.123456+01", "2026-11-26 15:07:51+00", 2, "once refused")
	want := fmt.Sprintf(`{"id":%q,"event_type":"lead.created","aggregate_type":"lead","aggregate_id":"l-1","organization_id":%q,`+
		`"payload":{"n":1,"name":"Ada"},"metadata":{"trigger":"insert"},"status":"processed",`+
		`"created_at":"2026-11-26T14:07:50.123456Z","processed_at":"2026-11-26T15:07:51Z","retry_count":2,"error_message":"once refused"}`+"\n", id, orgA)
	status, raw := e.callRaw(t, "GET", "/api/events/"+id, adminToken, nil)
	require.Equal(t, http.StatusOK, status, string(raw))
	assert.Equal(t, want, string(raw))
}

// insertRow stores a lead.created event of aggregate lead with every
// nullable column given (nil for NULL), and returns its id.
func (e *env) insertRow(t *testing.T, aggregateID string, payload, metadata, org, status, createdAt, processedAt, retryCount, errorMessage any) string {
	t.Helper()
	var id string
	require.NoError(t, e.pool.QueryRow(t.Context(), `INSERT INTO public.event_bus
		(event_type, aggregate_type, aggregate_id, payload, metadata, organization_id, status, created_at, processed_at, retry_count, error_message)
		VALUES ('lead.created', 'lead', $1, $2::jsonb, $3::jsonb, $4::uuid, $5, $6::timestamptz, $7::timestamptz, $8::int, $9)
		RETURNING id::text`, aggregateID, payload, metadata, org, status, createdAt, processedAt, retryCount, errorMessage).Scan(&id))
	return id
}

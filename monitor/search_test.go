package monitor

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// insertWith stores an event with a payload and an error message.
func (e *env) insertWith(t *testing.T, org, status, eventType, aggregateID, payload, errorMessage string, createdAt time.Time) string {
	t.Helper()
	id := e.insert(t, org, status, eventType, aggregateID, createdAt)
	var msg any
	if errorMessage != "" {
		msg = errorMessage
	}
	_, err := e.pool.Exec(t.Context(), `UPDATE public.event_bus SET payload = $2::jsonb, error_message = $3 WHERE id = $1`, id, payload, msg)
	require.NoError(t, err)
	return id
}

// GET /api/events searches by payload containment and by text, with the
// other filters and pages, and the first page counts the matches.
func TestSearchEvents(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	ada := e.insertWith(t, orgA, "processed", "lead.created", "lead-1", `{"first_name": "Ada", "tags": ["vip"]}`, "", now.Add(-3*time.Hour))
	grace := e.insertWith(t, orgB, "processed", "lead.created", "lead-2", `{"first_name": "Grace"}`, "", now.Add(-2*time.Hour))
	pay := e.insertWith(t, orgA, "failed", "payment.completed", "pay-1", `{"amount": 10}`, "nats: maximum payload exceeded", now.Add(-time.Hour))
	ada2 := e.insertWith(t, orgA, "pending", "lead.status_updated", "lead-3", `{"first_name": "Ada"}`, "", now.Add(-time.Minute))

	q := url.QueryEscape
	for query, want := range map[string][]string{
		"payload=" + q(`{"first_name":"Ada"}`):                       {ada2, ada},
		"payload=" + q(`{"tags":["vip"]}`):                           {ada},
		"payload=" + q(`{"first_name":"Ada"}`) + "&status=processed": {ada},
		"payload=" + q(`{}`):                                         {ada2, pay, grace, ada},
		"q=PAYMENT":                                                  {pay},
		"q=lead-":                                                    {ada2, grace, ada},
		"q=" + q("maximum payload"):                                  {pay},
		"q=status_":                                                  {ada2},
		"q=lead&organization_id=" + orgA:                             {ada2, ada},
		"q=lead&since=" + q(now.Add(-150*time.Minute).Format(time.RFC3339)):           {ada2, grace},
		"q=lead&until=" + q(now.Add(-150*time.Minute).Format(time.RFC3339)):           {ada},
		"payload=" + q(`{"first_name":"Ada"}`) + "&q=created&organization_id=" + orgA: {ada},
		"q=nothing-like-this": nil,
	} {
		status, body := e.call(t, "GET", "/api/events?"+query, adminToken, nil)
		require.Equal(t, http.StatusOK, status, "%s: %v", query, body)
		assert.Equal(t, want, ids(t, body), query)
		assert.Equal(t, float64(len(want)), body["matched"], "%s: matched", query)
		assert.Nil(t, body["matched_capped"], query)
	}

	// Pages of one: the filter holds on every page; only the first counts.
	path := "/api/events?limit=1&q=lead&payload=" + q(`{"first_name":"Ada"}`)
	status, body := e.call(t, "GET", path, adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, []string{ada2}, ids(t, body))
	assert.Equal(t, float64(2), body["matched"])
	next, _ := body["next_cursor"].(string)
	require.NotEmpty(t, next)
	status, body = e.call(t, "GET", path+"&cursor="+q(next), adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, []string{ada}, ids(t, body))
	assert.Nil(t, body["next_cursor"])
	assert.NotContains(t, body, "matched", "a later page does not count again")
}

// The count stops at its cap and says so.
func TestSearchCountIsCapped(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.pool.Exec(t.Context(), `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status, payload)
		SELECT 'bulk.imported', 'bulk', 'b-' || i, 'processed', '{"batch": 7}' FROM generate_series(1, $1) AS i`, countCap+5)
	require.NoError(t, err)
	status, body := e.call(t, "GET", "/api/events?limit=5&payload="+url.QueryEscape(`{"batch":7}`), adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Len(t, ids(t, body), 5)
	assert.Equal(t, float64(countCap), body["matched"])
	assert.Equal(t, true, body["matched_capped"])
}

// Bad search values are 400 with an error naming the parameter.
func TestSearchBadInputNamesTheParameter(t *testing.T) {
	t.Parallel()
	e := setup(t)
	q := url.QueryEscape
	for query, param := range map[string]string{
		"payload=" + q(`[1,2]`):  "payload",
		"payload=" + q(`"text"`): "payload",
		"payload=" + q(`null`):   "payload",
		"payload=" + q(`{"a":`):  "payload",
		"payload=lead":           "payload",
		"since=yesterday":        "since",
		"until=2026-12-01":       "until",
		"since=" + q("2026-12-02T00:00:00Z") + "&until=" + q("2026-12-01T00:00:00Z"): "since",
		"organization_id=acme":          "organization_id",
		"q=" + strings.Repeat("x", 201): "q",
	} {
		status, body := e.call(t, "GET", "/api/events?"+query, adminToken, nil)
		assert.Equal(t, http.StatusBadRequest, status, "%s: %v", query, body)
		msg, _ := body["error"].(string)
		assert.True(t, strings.HasPrefix(msg, param+" "), "%s: the error %q names %s", query, msg, param)
	}
}

// Under RLS, an organization's admin finds only their organization's events,
// whatever the search asks for, and counts only those.
func TestSearchAsAnOrganizationAdmin(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	a := e.insertWith(t, orgA, "processed", "lead.created", "lead-1", `{"first_name": "Ada"}`, "", now.Add(-time.Hour))
	e.insertWith(t, orgB, "processed", "lead.created", "lead-1", `{"first_name": "Ada"}`, "", now.Add(-time.Hour))
	e.insertWith(t, "", "processed", "lead.created", "lead-1", `{"first_name": "Ada"}`, "", now.Add(-time.Hour))
	for _, query := range []string{
		"payload=" + url.QueryEscape(`{"first_name":"Ada"}`),
		"q=lead-1",
		"q=lead-1&organization_id=" + orgB, // asking for B finds nothing, not B's events
	} {
		status, body := e.call(t, "GET", "/api/events?"+query, userJWT(t, adminA), nil)
		require.Equal(t, http.StatusOK, status, body)
		want := []string{a}
		if strings.Contains(query, orgB) {
			want = nil
		}
		assert.Equal(t, want, ids(t, body), query)
		assert.Equal(t, float64(len(want)), body["matched"], query)
	}
	status, body := e.call(t, "GET", "/api/events?q=lead-1", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Len(t, ids(t, body), 3, "the admin token sees every organization")
}

package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The search and the analytics of the real binary, as the admin token and as
// each organization's admin (a JWT): an admin finds and counts only their
// organization's events, whatever they search for; bad values are 400 with
// an error naming the parameter.
func TestSearchAndAnalyticsAPIUnderRLS(t *testing.T) {
	t.Parallel()
	secret, admin := randomHex(t, 32), randomHex(t, 32)
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_JWT_SECRET="+secret, "EVENTBUS_ADMIN_TOKEN="+admin))
	e.startRelay()
	waitHTTP(t, 60*time.Second, addr, "/readyz", http.StatusOK)
	const adminA, orgA = "aaaaaaaa-1111-4000-8000-00000000000a", "aaaaaaaa-0000-4000-8000-00000000000a"
	const adminB, orgB = "bbbbbbbb-1111-4000-8000-00000000000b", "bbbbbbbb-0000-4000-8000-00000000000b"
	ctx := t.Context()
	tokens := e.orgAdmins(secret, adminA, orgA, adminB, orgB)
	tokA, tokB := tokens[0], tokens[1]

	publish := func(org, eventType, aggregateID, payload string) string {
		var id string
		require.NoError(t, e.db.QueryRow(ctx, `SELECT public.publish_event($1, 'lead', $2, $3::jsonb, '{}'::jsonb, $4::uuid)::text`,
			eventType, aggregateID, payload, org).Scan(&id))
		return id
	}
	a1 := publish(orgA, "lead.created", "lead-1", `{"first_name": "Ada", "source": "csv"}`)
	a2 := publish(orgA, "lead.status_updated", "lead-1", `{"first_name": "Ada", "source": "web"}`)
	b1 := publish(orgB, "lead.created", "lead-7", `{"first_name": "Ada", "source": "csv"}`)
	e.waitStatuses(map[string]int{"processed": 3}, 60*time.Second)

	get := func(token, path string) (int, map[string]any) {
		t.Helper()
		status, body := apiDo(t, addr, http.MethodGet, path, token, nil)
		var out map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &out), "%s: %s", path, body)
		return status, out
	}
	idsOf := func(body map[string]any) []string {
		var out []string
		for _, ev := range body["events"].([]any) {
			out = append(out, ev.(map[string]any)["id"].(string))
		}
		sort.Strings(out)
		return out
	}
	sorted := func(ids ...string) []string { sort.Strings(ids); return ids }
	ada := "/api/events?payload=" + url.QueryEscape(`{"first_name": "Ada"}`)
	for _, c := range []struct {
		who, token, path string
		want             []string
	}{
		{"admin token", admin, ada, sorted(a1, a2, b1)},
		{"admin of A", tokA, ada, sorted(a1, a2)},
		{"admin of B", tokB, ada, sorted(b1)},
		{"admin of A", tokA, ada + "&q=status", sorted(a2)},
		{"admin of A", tokA, "/api/events?q=lead-7", nil},
		{"admin of A", tokA, "/api/events?q=lead&organization_id=" + orgB, nil},
		{"admin token", admin, "/api/events?payload=" + url.QueryEscape(`{"source": "csv"}`) + "&q=LEAD-", sorted(a1, b1)},
	} {
		status, body := get(c.token, c.path)
		require.Equal(t, http.StatusOK, status, "%s %s: %v", c.who, c.path, body)
		assert.Equal(t, c.want, idsOf(body), "%s %s", c.who, c.path)
		assert.Equal(t, float64(len(c.want)), body["matched"], "%s %s: matched", c.who, c.path)
	}

	totals := func(token string) (float64, []any, float64) {
		status, body := get(token, "/api/analytics?window=1h")
		require.Equal(t, http.StatusOK, status, body)
		return body["totals"].(map[string]any)["total"].(float64), body["busiest_organizations"].([]any),
			body["latency_ms"].(map[string]any)["count"].(float64)
	}
	n, orgs, latencies := totals(admin)
	assert.Equal(t, 3.0, n)
	assert.Equal(t, []any{map[string]any{"organization_id": orgA, "count": 2.0}, map[string]any{"organization_id": orgB, "count": 1.0}}, orgs)
	assert.Equal(t, 3.0, latencies)
	n, orgs, latencies = totals(tokA)
	assert.Equal(t, 2.0, n, "A's admin counts A's events")
	assert.Equal(t, []any{map[string]any{"organization_id": orgA, "count": 2.0}}, orgs)
	assert.Equal(t, 2.0, latencies)
	n, orgs, _ = totals(tokB)
	assert.Equal(t, 1.0, n, "B's admin counts B's events")
	assert.Equal(t, []any{map[string]any{"organization_id": orgB, "count": 1.0}}, orgs)

	for path, param := range map[string]string{
		"/api/events?payload=" + url.QueryEscape(`["Ada"]`):                 "payload",
		"/api/events?payload=Ada":                                           "payload",
		"/api/events?since=yesterday":                                       "since",
		"/api/events?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z": "since",
		"/api/events?organization_id=acme":                                  "organization_id",
		"/api/analytics?window=2h":                                          "window",
	} {
		status, body := get(tokA, path)
		assert.Equal(t, http.StatusBadRequest, status, "%s: %v", path, body)
		msg, _ := body["error"].(string)
		assert.True(t, strings.HasPrefix(msg, param+" "), "%s: the error %q names %s", path, msg, param)
	}
}

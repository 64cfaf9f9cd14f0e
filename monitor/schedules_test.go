package monitor

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// GET /api/schedules: the schedules with their next run and the delayed
// events waiting, each organization's admin seeing only theirs.
func TestSchedulesAndDelayedEvents(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	_, err := e.pool.Exec(ctx, `INSERT INTO public.event_schedules (name, cron, timezone, event_type, aggregate_type, aggregate_id, organization_id)
		VALUES ('a-nightly', '0 3 * * *', 'Europe/Berlin', 'report.due', 'report', 'r1', $1),
		       ('b-hourly', '0 * * * *', NULL, 'report.due', 'report', 'r2', $2)`, orgA, orgB)
	require.NoError(t, err)
	soon := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	var delayedA string
	require.NoError(t, e.pool.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id, metadata)
		VALUES ('reminder.due', 'lead', 'l1', $1, jsonb_build_object('deliver_at', $2::text)) RETURNING id::text`,
		orgA, soon.Format(time.RFC3339)).Scan(&delayedA))
	_, err = e.pool.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id, metadata)
		VALUES ('reminder.due', 'lead', 'l2', $1, jsonb_build_object('deliver_at', $2::text)),
		       ('reminder.done', 'lead', 'l3', $1, '{}')`, orgB, soon.Format(time.RFC3339))
	require.NoError(t, err)

	status, body := e.call(t, "GET", "/api/schedules", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Len(t, body["schedules"], 2)
	assert.Equal(t, float64(2), body["delayed_count"])

	status, body = e.call(t, "GET", "/api/schedules", userJWT(t, adminA), nil)
	require.Equal(t, http.StatusOK, status, body)
	schedules := body["schedules"].([]any)
	require.Len(t, schedules, 1, "A's admin sees A's schedule only")
	s := schedules[0].(map[string]any)
	assert.Equal(t, "a-nightly", s["name"])
	next, err := time.Parse(time.RFC3339, s["next_run_at"].(string))
	require.NoError(t, err)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	assert.Equal(t, 3, next.In(berlin).Hour(), "next run at 03:00 Berlin time: %s", next)
	delayed := body["delayed"].([]any)
	require.Len(t, delayed, 1)
	d := delayed[0].(map[string]any)
	assert.Equal(t, delayedA, d["id"])
	at, err := time.Parse(time.RFC3339, d["deliver_at"].(string))
	require.NoError(t, err)
	assert.True(t, at.Equal(soon), "deliver_at %s", at)

	status, body = e.call(t, "GET", "/api/events/delayed", userJWT(t, adminB), nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, float64(1), body["count"])
	require.Len(t, body["events"], 1)
	assert.Equal(t, "l2", body["events"].([]any)[0].(map[string]any)["aggregate_id"])

	status, body = e.call(t, "GET", "/api/schedules", userJWT(t, memberA), nil)
	assert.Equal(t, http.StatusForbidden, status, "a member who is not an admin: %v", body)
}

package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// POST /api/events/{id}/redrive hands one failed event back to the relay:
// another organization's admin gets a 404 and changes nothing, an event that
// is not failed is a 409, and the event's own admin gets it published and
// processed once it is fixed, its retry count kept.
func TestRedriveOneFailedEventThroughTheAPI(t *testing.T) {
	t.Parallel()
	secret := randomHex(t, 32)
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_JWT_SECRET="+secret, "EVENTBUS_ADMIN_TOKEN="+randomHex(t, 32),
		"EVENTBUS_MAX_RETRIES=1"))
	e.startRelay()
	waitHTTP(t, 60*time.Second, addr, "/readyz", http.StatusOK)
	ctx := t.Context()
	const adminA, orgA = "aaaaaaaa-1111-4000-8000-00000000000a", "aaaaaaaa-0000-4000-8000-00000000000a"
	const adminB, orgB = "bbbbbbbb-1111-4000-8000-00000000000b", "bbbbbbbb-0000-4000-8000-00000000000b"
	tokens := e.orgAdmins(secret, adminA, orgA, adminB, orgB)
	tokA, tokB := tokens[0], tokens[1]

	// Organization A's import wrote an event type that is no NATS subject:
	// it fails on its only attempt.
	var failed, delivered string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload, metadata, organization_id)
		VALUES ('order placed', 'order', 'o-1', '{}', '{}', $1) RETURNING id::text`, orgA).Scan(&failed))
	require.NoError(t, e.db.QueryRow(ctx, `SELECT public.publish_event('order.placed', 'order', 'o-2', '{}'::jsonb, '{}'::jsonb, $1::uuid)::text`, orgA).Scan(&delivered))
	eventually(t, 60*time.Second, func() (bool, string) {
		a, b := e.storedRow(ctx, failed).Status, e.storedRow(ctx, delivered).Status
		return a == "failed" && b == "processed", "statuses " + a + ", " + b
	})

	status, body := apiDo(t, addr, http.MethodPost, "/api/events/"+failed+"/redrive", tokB, map[string]any{})
	assert.Equal(t, http.StatusNotFound, status, "another organization's event: %s", body)
	status, body = apiDo(t, addr, http.MethodPost, "/api/events/"+delivered+"/redrive", tokA, map[string]any{})
	assert.Equal(t, http.StatusConflict, status, "a processed event: %s", body)
	assert.Contains(t, body, "only a failed event is redriven")
	require.Equal(t, "failed", e.storedRow(ctx, failed).Status, "nothing changed")

	_, err := e.db.Exec(ctx, `UPDATE public.event_bus SET event_type = 'order.placed' WHERE id = $1`, failed)
	require.NoError(t, err)
	status, body = apiDo(t, addr, http.MethodPost, "/api/events/"+failed+"/redrive", tokA, map[string]any{})
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"redriven":1}`, body)
	eventually(t, 60*time.Second, func() (bool, string) {
		st := e.storedRow(ctx, failed).Status
		return st == "processed", "the redriven event is " + st
	})
	var retries int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT retry_count FROM public.event_bus WHERE id = $1`, failed).Scan(&retries))
	assert.Equal(t, 1, retries, "the retry count is kept")
	require.Contains(t, e.rawMessages(), failed, "the redriven event is in the stream")
}

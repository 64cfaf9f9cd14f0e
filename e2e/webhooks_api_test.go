package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// apiDo sends method path with a JSON body (nil: none) and a bearer token.
func apiDo(t *testing.T, addr, method, path, token string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+addr+path, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// /api/webhooks under the monitor's auth and RLS: each organization's admin
// creates, lists, reads deliveries of and removes their own endpoints only;
// another organization's endpoint is a 404 to them; the admin token sees
// all; redeliver makes a failed delivery pending again.
func TestWebhooksAPIIsolatesOrganizations(t *testing.T) {
	t.Parallel()
	secret := randomHex(t, 32)
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_JWT_SECRET="+secret, "EVENTBUS_ADMIN_TOKEN="+randomHex(t, 32),
		"EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true", "EVENTBUS_WEBHOOK_MAX_ATTEMPTS=1"))
	e.startRelay()
	waitHTTP(t, 60*time.Second, addr, "/readyz", http.StatusOK)
	const adminA, orgA = "aaaaaaaa-1111-4000-8000-00000000000a", "aaaaaaaa-0000-4000-8000-00000000000a"
	const adminB, orgB = "bbbbbbbb-1111-4000-8000-00000000000b", "bbbbbbbb-0000-4000-8000-00000000000b"
	tokens := e.orgAdmins(secret, adminA, orgA, adminB, orgB)
	tokA, tokB := tokens[0], tokens[1]
	broken := newHookReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })

	status, body := apiDo(t, addr, http.MethodPost, "/api/webhooks", tokA, map[string]any{"url": broken.srv.URL, "event_types": []string{"order.*"}})
	require.Equal(t, http.StatusCreated, status, body)
	var created struct {
		ID             string `json:"id"`
		Secret         string `json:"secret"`
		OrganizationID string `json:"organization_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &created))
	assert.Equal(t, orgA, created.OrganizationID, "an admin's endpoint is for their organization")
	assert.Regexp(t, `^whsec_`, created.Secret)

	status, body = apiDo(t, addr, http.MethodPost, "/api/webhooks", tokA, map[string]any{"url": broken.srv.URL, "organization_id": orgB})
	assert.Equal(t, http.StatusForbidden, status, "an endpoint for another organization: %s", body)
	status, body = apiDo(t, addr, http.MethodPost, "/api/webhooks", tokA, map[string]any{"url": "ftp://x.example/"})
	assert.Equal(t, http.StatusBadRequest, status, body)

	status, body = apiDo(t, addr, http.MethodGet, "/api/webhooks", tokB, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"webhooks": []}`, body, "B sees none of A's")
	status, _ = apiDo(t, addr, http.MethodGet, "/api/webhooks/"+created.ID+"/deliveries", tokB, nil)
	assert.Equal(t, http.StatusNotFound, status)
	status, _ = apiDo(t, addr, http.MethodDelete, "/api/webhooks/"+created.ID, tokB, nil)
	assert.Equal(t, http.StatusNotFound, status, "B cannot remove A's")
	status, _ = apiDo(t, addr, http.MethodPost, "/api/webhooks/"+created.ID+"/redeliver", tokB, nil)
	assert.Equal(t, http.StatusNotFound, status)

	status, body = apiDo(t, addr, http.MethodGet, "/api/webhooks", tokA, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, created.ID)
	assert.NotContains(t, body, created.Secret, "the list does not repeat secrets")

	e.waitWebhookConsumer()
	var eventID string
	require.NoError(t, e.db.QueryRow(t.Context(), `SELECT public.publish_event('order.placed', 'test', 'o-1', '{}'::jsonb, '{}'::jsonb, $1::uuid)::text`, orgA).Scan(&eventID))
	eventually(t, 60*time.Second, func() (bool, string) {
		st := e.deliveryStatuses(created.ID)[eventID]
		return st == "failed", "delivery " + st
	})
	status, body = apiDo(t, addr, http.MethodGet, "/api/webhooks/"+created.ID+"/deliveries?status=failed", tokA, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, eventID)
	assert.Contains(t, body, `"last_error":"HTTP 500"`)
	status, body = apiDo(t, addr, http.MethodPost, "/api/webhooks/"+created.ID+"/redeliver", tokA, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"redelivered": 1}`, body)
	eventually(t, 60*time.Second, func() (bool, string) {
		return len(broken.requests()) >= 2, "the redelivered attempt"
	})

	status, body = apiDo(t, addr, http.MethodDelete, "/api/webhooks/"+created.ID, tokA, nil)
	assert.Equal(t, http.StatusNoContent, status, body)
	assert.Empty(t, e.deliveryStatuses(created.ID))
}

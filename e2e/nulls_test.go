package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nullRowSQL inserts a row with every column the seed leaves nullable set to
// NULL, status given.
const nullRowSQL = `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload, metadata,
	organization_id, status, created_at, processed_at, retry_count, error_message)
	VALUES ($1, 'test', $2, NULL, NULL, NULL, $3, NULL, NULL, NULL, NULL) RETURNING id::text`

// The seed allows NULL in payload, metadata, organization_id, status,
// created_at, processed_at, retry_count and error_message. Such rows go
// through every read path: backfill, the stream, the status writes, status,
// the monitor's API, replay, tail, verify, and a status of NULL counts as
// pending (the seed's default).
func TestNullableSeedColumnsThroughEveryReadPath(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	const token = "e2e-admin-token-0123456789abcdef"
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_ADMIN_TOKEN="+token))
	ctx := t.Context()

	// Before the slot exists: backfilled.
	var ids []string
	for i, status := range []any{"pending", nil} {
		var id string
		require.NoError(t, e.db.QueryRow(ctx, nullRowSQL, "null.backfilled", fmt.Sprint(i), status).Scan(&id))
		ids = append(ids, id)
	}
	e.startRelay()
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)
	// After: streamed.
	tail := e.startTail("--json")
	for i, status := range []any{"pending", nil} {
		var id string
		require.NoError(t, e.db.QueryRow(ctx, nullRowSQL, "null.streamed", fmt.Sprint(i), status).Scan(&id))
		ids = append(ids, id)
	}
	e.waitProcessed(len(ids), time.Minute)
	for range 2 {
		var b body
		line := tail.next()
		require.NoError(t, json.Unmarshal([]byte(line), &b), line)
		assert.Equal(t, "null.streamed", b.EventType)
	}
	require.Equal(t, 0, tail.stop())

	seen := map[string]bool{}
	for _, m := range e.streamMessages() {
		seen[m.Body.ID] = true
		assert.Contains(t, string(m.Raw), `"payload":null,"metadata":null,"created_at":null`, "NULLs as JSON null")
		assert.Nil(t, m.Body.OrganizationID)
	}
	for _, id := range ids {
		assert.True(t, seen[id], "event %s in the stream", id)
	}

	r := e.cli("status", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	r = e.cli("status")
	require.Equal(t, 0, r.code, "%s", r)

	for _, path := range []string{"/api/events", "/api/events/" + ids[0], "/api/stats"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	}

	r = e.cli("replay", "--id", ids[0], "--id", ids[1])
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "replayed 2 events")

	r = e.cli("verify", "--json")
	require.Equal(t, 0, r.code, "rows without created_at are in no window: %s", r)
	assert.True(t, strings.Contains(r.stdout, `"missing": 0`), r.stdout)
}

package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMonitorBrowserRowWithNullColumns opens the monitor page in headless
// Chromium on a row whose nullable columns are all NULL, as the seed's table
// allows: the page shows it with no time ("—"), pending, no retries and {}
// for payload and metadata (e2e/browser/nulls.test.mjs).
func TestMonitorBrowserRowWithNullColumns(t *testing.T) {
	t.Parallel()
	dir, node, chromium := browserTools(t)
	e, addr, token := startMonitor(t)
	ctx := t.Context()

	var id string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus
		(event_type, aggregate_type, aggregate_id, payload, metadata, status, created_at, retry_count)
		VALUES ('lead.imported', 'lead', 'l-null', NULL, NULL, NULL, NULL, NULL) RETURNING id::text`).Scan(&id))
	// Let the relay deliver it, then make the delivery columns NULL again
	// (UPDATEs are not streamed): the row as an adopted table may hold it.
	eventually(t, 60*time.Second, func() (bool, string) {
		var status *string
		require.NoError(t, e.db.QueryRow(ctx, `SELECT status FROM public.event_bus WHERE id = $1`, id).Scan(&status))
		return status != nil && *status != "pending", "the relay has not delivered the row yet"
	})
	_, err := e.db.Exec(ctx, `UPDATE public.event_bus SET status = NULL, retry_count = NULL, processed_at = NULL, error_message = NULL
		WHERE id = $1`, id)
	require.NoError(t, err)

	out := runBrowserScript(t, dir, node, "nulls.test.mjs", "BASE_URL=http://"+addr, "TOKEN="+token, "NULL_ID="+id, "CHROMIUM="+chromium)
	require.Equal(t, "DONE\n", out)
}

// startMonitor sets up a database and NATS, starts the relay serving the
// monitor on a free address with a random admin token (and the variables kv
// added), and returns once /readyz answers 200.
func startMonitor(t *testing.T, kv ...string) (e *env, addr, token string) {
	t.Helper()
	addr, token = freeAddr(t), randomHex(t, 32)
	e = setup(t, withEnv(append([]string{"EVENTBUS_HTTP_ADDR=" + addr, "EVENTBUS_ADMIN_TOKEN=" + token}, kv...)...))
	e.startRelay()
	waitHTTP(t, 60*time.Second, addr, "/readyz", 200)
	return e, addr, token
}

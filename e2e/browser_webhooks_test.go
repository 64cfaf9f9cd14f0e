package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMonitorWebhooksInTheBrowser drives the monitor's Webhooks card in
// headless Chromium (e2e/browser/webhooks.test.mjs): an endpoint that
// answered 500 is listed with its failed delivery and the last error; once
// the endpoint answers, "Redeliver failed" gets the delivery delivered,
// which the database confirms. A failed event's detail offers Redrive, which
// gets it processed once it is fixed. Skipped without node or chromium, as
// TestMonitorInTheBrowser.
func TestMonitorWebhooksInTheBrowser(t *testing.T) {
	t.Parallel()
	dir, node, chromium := browserTools(t)
	e, addr, token := startMonitor(t, "EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true", "EVENTBUS_WEBHOOK_MAX_ATTEMPTS=1", "EVENTBUS_MAX_RETRIES=1")
	ctx := t.Context()
	var healthy atomic.Bool
	r := newHookReceiver(t, func(_ int, w http.ResponseWriter) {
		if healthy.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	hookID, _ := e.addWebhook("--url", r.srv.URL, "--event-type", "order.*")
	e.waitWebhookConsumer()
	id := e.publish(ctx, "order.placed", "o-1", `{}`)
	eventually(t, 60*time.Second, func() (bool, string) {
		st := e.deliveryStatuses(hookID)[id]
		return st == "failed", "delivery " + st
	})
	// An event type that is no NATS subject: it fails on its only attempt.
	var failed string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload, metadata)
		VALUES ('order placed', 'order', 'o-2', '{}', '{}') RETURNING id::text`).Scan(&failed))
	eventually(t, 60*time.Second, func() (bool, string) {
		st := e.storedRow(ctx, failed).Status
		return st == "failed", "event " + st
	})

	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, "webhooks.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL=http://"+addr, "TOKEN="+token, "WEBHOOK_ID="+hookID, "EVENT_ID="+id,
		"FAILED_EVENT_ID="+failed, "CHROMIUM="+chromium)
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	done := false
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		switch line := lines.Text(); line {
		case "READY-TO-HEAL":
			healthy.Store(true)
			_, err = io.WriteString(stdin, "HEALED\n")
			require.NoError(t, err)
		case "READY-TO-FIX":
			_, err = e.db.Exec(ctx, `UPDATE public.event_bus SET event_type = 'order.placed' WHERE id = $1`, failed)
			require.NoError(t, err)
			_, err = io.WriteString(stdin, "FIXED\n")
			require.NoError(t, err)
		case "DONE":
			done = true
		default:
			t.Fatalf("unexpected line from the browser script: %q\n%s", line, stderr.String())
		}
	}
	require.NoError(t, cmd.Wait(), "browser script failed:\n%s", stderr.String())
	require.True(t, done, "browser script ended without DONE:\n%s", stderr.String())
	// The page shows no failure once the delivery is pending again; the
	// database says when it is delivered.
	eventually(t, 60*time.Second, func() (bool, string) {
		st := e.deliveryStatuses(hookID)[id]
		return st == "delivered", "the redelivered delivery, in the database: " + st
	})
	row := e.storedRow(ctx, failed)
	require.Equal(t, "processed", row.Status, "the redriven event, in the database")
	msgs := e.rawMessages()
	require.Contains(t, msgs, failed, "the redriven event is in the stream")
}

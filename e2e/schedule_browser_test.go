package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMonitorSchedulesInTheBrowser drives the monitor's Schedules card in
// headless Chromium (e2e/browser/schedules.test.mjs): a schedule with its
// zone and next run, a delayed event waiting. Skipped without node or
// chromium, as TestMonitorInTheBrowser.
func TestMonitorSchedulesInTheBrowser(t *testing.T) {
	t.Parallel()
	dir, node, chromium := browserTools(t)
	e, addr, token := startMonitor(t)
	ctx := t.Context()
	name := `nightly <img src=x onerror=alert(1)><b>x</b>`
	r := runCLI(t, e.bin, e.environ(), "schedule", "add", "--name", name, "--cron", "0 3 * * *", "--timezone", "Europe/Berlin",
		"--event-type", "report.due", "--aggregate-type", "report", "--aggregate-id", "r1")
	require.Equal(t, 0, r.code, "%s", r)
	delayed := e.publishDelayed(ctx, "reminder.due", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))

	out := runBrowserScript(t, dir, node, "schedules.test.mjs",
		"BASE_URL=http://"+addr, "TOKEN="+token, "SCHEDULE="+name, "DELAYED_ID="+delayed, "CHROMIUM="+chromium)
	require.Equal(t, "DONE\n", out)
}

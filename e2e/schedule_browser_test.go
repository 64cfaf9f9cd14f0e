package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
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

	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, "schedules.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL=http://"+addr, "TOKEN="+token, "SCHEDULE="+name, "DELAYED_ID="+delayed, "CHROMIUM="+chromium)
	cmd.WaitDelay = 10 * time.Second
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	require.NoError(t, err, "browser script failed:\n%s", stderr.String())
	require.Equal(t, "DONE", strings.TrimSpace(string(out)), "browser script:\n%s", stderr.String())
}

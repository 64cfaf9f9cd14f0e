package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSearchAndAnalyticsInTheBrowser drives the monitor's search and its
// Analytics view in headless Chromium against the real relay:
// e2e/browser/search.test.mjs filters by payload and by text, checks that the
// URL keeps the filter and that Back and Forward restore it;
// e2e/browser/analytics.test.mjs opens the Analytics view and checks that the
// chart, its legend and the summary show the counts published here. Skipped
// without node or chromium, as TestMonitorInTheBrowser.
//
// The screenshots go to a temporary directory, or to
// EVENTBUS_SEARCH_SCREENSHOT and EVENTBUS_ANALYTICS_SCREENSHOT when set
// (docs/search.png and docs/analytics.png are made so).
func TestSearchAndAnalyticsInTheBrowser(t *testing.T) {
	t.Parallel()
	dir, node, chromium := browserTools(t)
	e, addr, token := startMonitor(t, "EVENTBUS_MAX_RETRIES=1")
	ctx := t.Context()

	// Five leads, two of them imported from a CSV file, three payments of two
	// aggregates, and an event an import wrote straight into the table with a
	// type that is no NATS subject: it fails on its only attempt.
	var csv, pay1, all []string
	var csvAda string
	for i, lead := range []struct{ name, source string }{{"Ada", "csv"}, {"Grace", "web"}, {"Alan", "csv"}, {"Edsger", "web"}, {"Barbara", "web"}} {
		id := e.publish(ctx, "lead.created", fmt.Sprintf("lead-%d", i+1), fmt.Sprintf(`{"first_name": %q, "source": %q}`, lead.name, lead.source))
		all = append(all, id)
		if lead.source == "csv" {
			csv = append(csv, id)
			if lead.name == "Ada" {
				csvAda = id
			}
		}
	}
	for _, agg := range []string{"pay-1", "pay-2", "pay-1"} {
		id := e.publish(ctx, "payment.completed", agg, `{"amount": 10, "currency": "RUB"}`)
		all = append(all, id)
		if agg == "pay-1" {
			pay1 = append(pay1, id)
		}
	}
	var bad string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload)
		VALUES ('lead imported', 'test', 'lead-9', '{"source": "xlsx"}') RETURNING id::text`).Scan(&bad))
	all = append(all, bad)
	e.waitStatuses(map[string]int{"processed": 8, "failed": 1}, 60*time.Second)
	require.Len(t, all, 9)
	// Organizations for the busiest list: the leads' and the payments'.
	for org, types := range map[string]string{"aaaaaaaa-0000-4000-8000-000000000001": "lead.created", "bbbbbbbb-0000-4000-8000-000000000002": "payment.completed"} {
		_, err := e.db.Exec(ctx, `UPDATE public.event_bus SET organization_id = $1 WHERE event_type = $2`, org, types)
		require.NoError(t, err)
	}

	want, err := json.Marshal(map[string]any{
		"types":               map[string]int{"lead.created": 5, "payment.completed": 3, "lead imported": 1},
		"total":               9,
		"failure_rate":        "11%", // 1 of the 9 that ended
		"top_aggregate":       "test / pay-1",
		"top_aggregate_count": 2,
	})
	require.NoError(t, err)

	for _, script := range []struct {
		file, shotEnv string
		env           []string
	}{
		{"search.test.mjs", "EVENTBUS_SEARCH_SCREENSHOT", []string{
			"CSV_IDS=" + strings.Join(csv, ","), "PAY1_IDS=" + strings.Join(pay1, ","), "CSV_ADA_ID=" + csvAda,
		}},
		{"analytics.test.mjs", "EVENTBUS_ANALYTICS_SCREENSHOT", []string{"WANT=" + string(want)}},
	} {
		shot := os.Getenv(script.shotEnv)
		if shot == "" {
			shot = filepath.Join(t.TempDir(), strings.TrimSuffix(script.file, ".test.mjs")+".png")
		}
		out := runBrowserScript(t, dir, node, script.file,
			append(script.env, "BASE_URL=http://"+addr, "TOKEN="+token, "CHROMIUM="+chromium, "SCREENSHOT="+shot)...)
		require.Equal(t, "DONE\n", out, "%s ended without DONE", script.file)
		if info, err := os.Stat(shot); assert.NoError(t, err, "screenshot") {
			assert.Greater(t, info.Size(), int64(10_000), "screenshot %s", shot)
			t.Logf("screenshot: %s", shot)
		}
	}
}

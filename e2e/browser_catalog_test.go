package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMonitorCatalogInTheBrowser checks GET /api/types and drives the
// monitor's Catalog view in headless Chromium (e2e/browser/catalog.test.mjs):
// two leads inserted while lead.created had one version count under v1, an
// event published after v2 was added counts under v2 and is the example.
// Skipped without node or chromium, as TestMonitorInTheBrowser.
func TestMonitorCatalogInTheBrowser(t *testing.T) {
	t.Parallel()
	dir, node, chromium := browserTools(t)
	e, addr, token := startMonitor(t)
	ctx := t.Context()
	e.insertLeads(ctx, "Grace Hopper", "Alan Turing")
	require.Equal(t, "2", e.setType("lead.created", `{"type": "object", "required": ["lead"]}`))
	e.publishMeta("lead.created", `{"lead": {"name": "Ada"}}`, `{}`)
	e.waitProcessed(3, 60*time.Second)

	status, body := apiDo(t, addr, http.MethodGet, "/api/types", token, nil)
	require.Equal(t, http.StatusOK, status, body)
	var got struct {
		Types []struct {
			EventType      string `json:"event_type"`
			CurrentVersion int    `json:"current_version"`
			Versions       []struct {
				Version   int             `json:"version"`
				Schema    json.RawMessage `json:"schema"`
				Events24h int             `json:"events_24h"`
			} `json:"versions"`
			Example *struct {
				Payload json.RawMessage `json:"payload"`
			} `json:"example"`
		} `json:"types"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &got), body)
	require.Len(t, got.Types, 2, body)
	lead := got.Types[0]
	assert.Equal(t, "lead.created", lead.EventType)
	assert.Equal(t, 2, lead.CurrentVersion)
	require.Len(t, lead.Versions, 2)
	assert.Equal(t, []int{2, 1}, []int{lead.Versions[0].Events24h, lead.Versions[1].Events24h}, "events per version")
	assert.Contains(t, string(lead.Versions[0].Schema), "lead_id", "v1's schema")
	require.NotNil(t, lead.Example)
	assert.JSONEq(t, `{"lead": {"name": "Ada"}}`, string(lead.Example.Payload))
	assert.Equal(t, "lead.status_updated", got.Types[1].EventType)
	assert.Nil(t, got.Types[1].Example)

	out := runBrowserScript(t, dir, node, "catalog.test.mjs", "BASE_URL=http://"+addr, "TOKEN="+token, "CHROMIUM="+chromium)
	require.Equal(t, "DONE\n", out)
}

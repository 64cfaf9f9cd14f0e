package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var asyncapiInstall sync.Mutex

// asyncapiValidator returns node and e2e/asyncapi with @asyncapi/parser
// installed (npm ci). Without node or npm the test is skipped, unless
// EVENTBUS_REQUIRE_BROWSER=1, as for the browser tests.
func asyncapiValidator(t *testing.T) (node, dir string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("EVENTBUS_REQUIRE_BROWSER") == "1" {
			t.Fatalf(format+" (EVENTBUS_REQUIRE_BROWSER=1)", args...)
		}
		t.Skipf(format+"; install node and npm to validate the AsyncAPI document", args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node not found: %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	dir = filepath.Join(filepath.Dir(file), "asyncapi")
	asyncapiInstall.Lock()
	defer asyncapiInstall.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@asyncapi", "parser", "package.json")); errors.Is(err, os.ErrNotExist) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			missing("npm not found (needed to install @asyncapi/parser): %v", err)
		}
		cmd := exec.Command(npm, "ci", "--silent", "--no-audit", "--no-fund")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "npm ci in %s:\n%s", dir, out)
	}
	return node, dir
}

// `eventbus asyncapi` writes a document the reference parser accepts, in
// YAML and in JSON, with a channel per registered type at
// <prefix>.<event_type>, every version a message with its payload schema,
// and the version header; credentials of the NATS URL stay out.
func TestAsyncAPIDocumentValidates(t *testing.T) {
	t.Parallel()
	node, dir := asyncapiValidator(t)
	e := setup(t, withEnv("EVENTBUS_SUBJECT_PREFIX=crm"))
	require.Equal(t, "2", e.setType("lead.created", `{"$schema": "https://json-schema.org/draft/2020-12/schema",
		"type": "object", "required": ["lead"], "properties": {"lead": {"type": "object"}, "tags": {"type": "array", "prefixItems": [{"type": "string"}]}}}`))
	require.Equal(t, "1", e.setType("order.placed", ""))

	cmd := e.command("asyncapi")
	cmd.Env = append(cmd.Env, "EVENTBUS_NATS_URL=nats://relay:s3cret@nats.internal:4222")
	yamlDoc, err := cmd.Output()
	require.NoError(t, err)
	jsonDoc, err := e.command("asyncapi", "--json").Output()
	require.NoError(t, err)
	assert.NotContains(t, string(yamlDoc), "s3cret")
	assert.Contains(t, string(yamlDoc), "host: nats.internal:4222")

	for name, doc := range map[string][]byte{"asyncapi.yaml": yamlDoc, "asyncapi.json": jsonDoc} {
		file := filepath.Join(t.TempDir(), name)
		require.NoError(t, os.WriteFile(file, doc, 0o600))
		cmd := exec.Command(node, "validate.mjs", file)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "@asyncapi/parser refuses %s:\n%s\n%s", name, out, doc)
		assert.Contains(t, string(out), "valid AsyncAPI 3.0.0, 3 channel(s), 6 operation(s)")
	}

	var fromYAML, fromJSON map[string]any
	require.NoError(t, yaml.Unmarshal(yamlDoc, &fromYAML))
	require.NoError(t, json.Unmarshal(jsonDoc, &fromJSON))
	// The same document, but for the server of the other NATS URL.
	delete(fromYAML, "servers")
	delete(fromJSON, "servers")
	y, _ := json.Marshal(fromYAML)
	j, _ := json.Marshal(fromJSON)
	assert.JSONEq(t, string(j), string(y), "YAML and JSON say the same")

	var doc struct {
		Channels map[string]struct {
			Address  string `json:"address"`
			Messages map[string]struct {
				Name    string `json:"name"`
				Title   string `json:"title"`
				Current bool   `json:"x-eventbus-current"`
				Headers struct {
					Properties map[string]struct {
						Const string `json:"const"`
					} `json:"properties"`
					Required []string `json:"required"`
				} `json:"headers"`
				Payload struct {
					Properties struct {
						Payload map[string]any `json:"payload"`
					} `json:"properties"`
				} `json:"payload"`
			} `json:"messages"`
		} `json:"channels"`
		Operations map[string]struct {
			Action string `json:"action"`
		} `json:"operations"`
	}
	require.NoError(t, json.Unmarshal(jsonDoc, &doc))
	require.Contains(t, doc.Channels, "lead.created")
	require.Contains(t, doc.Channels, "lead.status_updated")
	require.Contains(t, doc.Channels, "order.placed")
	lead := doc.Channels["lead.created"]
	assert.Equal(t, "crm.lead.created", lead.Address)
	assert.Equal(t, "crm.lead.status_updated", doc.Channels["lead.status_updated"].Address)
	require.Len(t, lead.Messages, 2)
	v1, v2 := lead.Messages["v1"], lead.Messages["v2"]
	assert.Equal(t, "lead.created v2 (current)", v2.Title)
	assert.True(t, v2.Current)
	assert.False(t, v1.Current)
	assert.Equal(t, "2", v2.Headers.Properties["Eventbus-Event-Version"].Const)
	assert.Equal(t, "1", v1.Headers.Properties["Eventbus-Event-Version"].Const)
	assert.Contains(t, v2.Headers.Required, "Eventbus-Event-Version")
	for _, h := range []string{"Nats-Msg-Id", "Eventbus-Event-Type", "Eventbus-Aggregate-Type", "Eventbus-Aggregate-Id", "Eventbus-Organization-Id"} {
		assert.Contains(t, v2.Headers.Properties, h)
	}
	assert.Equal(t, []any{"lead"}, v2.Payload.Properties.Payload["required"], "v2's payload schema")
	v1Props, _ := v1.Payload.Properties.Payload["properties"].(map[string]any)
	assert.Contains(t, v1Props, "lead_id", "v1's payload schema, the seeded one")
	for _, op := range []string{"publish_lead.created", "consume_lead.created", "publish_order.placed"} {
		assert.Contains(t, doc.Operations, op)
	}
	assert.Equal(t, "send", doc.Operations["publish_lead.created"].Action)
	assert.Equal(t, "receive", doc.Operations["consume_lead.created"].Action)
	assert.True(t, strings.HasPrefix(string(yamlDoc), "asyncapi: 3.0.0\n"))
}

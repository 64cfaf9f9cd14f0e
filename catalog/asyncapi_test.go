package catalog

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleVersions() []Version {
	return []Version{
		{EventType: "lead.created", Version: 1, Schema: json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"lead_id":{"type":"string","format":"uuid"},"first_name":{"type":["string","null"]}},"required":["lead_id"]}`), Description: "a lead"},
		{EventType: "lead.created", Version: 2, Schema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`)},
		{EventType: "order.shipped", Version: 1},
	}
}

func TestAsyncAPIDocument(t *testing.T) {
	doc, err := AsyncAPI(sampleVersions(), DocOptions{SubjectPrefix: "evt", NATSURL: "nats://user:s3cret@nats.example:4222,nats://b:4223", Version: "1.2.3"})
	require.NoError(t, err)
	assert.NotContains(t, string(doc), "s3cret")
	var d struct {
		AsyncAPI string `json:"asyncapi"`
		Servers  map[string]struct {
			Host, Protocol string
		}
		Channels map[string]struct {
			Address  string
			Messages map[string]map[string]any
		}
		Operations map[string]struct{ Action string }
	}
	require.NoError(t, json.Unmarshal(doc, &d))
	assert.Equal(t, "3.0.0", d.AsyncAPI)
	assert.Equal(t, "nats.example:4222", d.Servers["nats"].Host)
	assert.Equal(t, "nats", d.Servers["nats"].Protocol)
	assert.Equal(t, "b:4223", d.Servers["nats-2"].Host)
	require.Contains(t, d.Channels, "lead.created")
	assert.Equal(t, "evt.lead.created", d.Channels["lead.created"].Address)
	assert.Len(t, d.Channels["lead.created"].Messages, 2)
	assert.Equal(t, "lead.created v2 (current)", d.Channels["lead.created"].Messages["v2"]["title"])
	assert.Equal(t, "lead.created v1", d.Channels["lead.created"].Messages["v1"]["title"])
	assert.Equal(t, "send", d.Operations["publish_lead.created"].Action)
	assert.Equal(t, "receive", d.Operations["consume_order.shipped"].Action)
	if out := os.Getenv("EVENTBUS_ASYNCAPI_OUT"); out != "" {
		y, err := YAML(doc)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(out+".json", doc, 0o644))
		require.NoError(t, os.WriteFile(out+".yaml", y, 0o644))
	}
}

func TestYAMLKeepsOrderAndTypes(t *testing.T) {
	y, err := YAML([]byte(`{"asyncapi":"3.0.0","b":"1","a":{"x":[1,"true",null]}}`))
	require.NoError(t, err)
	s := string(y)
	assert.Less(t, strings.Index(s, "asyncapi"), strings.Index(s, "b:"))
	assert.Contains(t, s, `b: "1"`)
	assert.Contains(t, s, `asyncapi: 3.0.0`)
	assert.Contains(t, s, `- "true"`)
}

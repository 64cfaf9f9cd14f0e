package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// setType runs `eventbus types set` with schema (none when "") and returns
// the version it printed.
func (e *env) setType(eventType, schema string) string {
	e.t.Helper()
	args := []string{"types", "set", eventType}
	if schema != "" {
		file := filepath.Join(e.t.TempDir(), "schema.json")
		require.NoError(e.t, os.WriteFile(file, []byte(schema), 0o600))
		args = append(args, "--schema", file)
	}
	out, err := e.command(args...).Output()
	require.NoError(e.t, err, "eventbus %s", strings.Join(args, " "))
	return strings.TrimSpace(string(out))
}

type typedRow struct {
	status, errorMessage string
	retries              int
}

func (e *env) rowOf(id string) typedRow {
	e.t.Helper()
	var r typedRow
	require.NoError(e.t, e.db.QueryRow(e.t.Context(), `SELECT coalesce(status, ''), coalesce(error_message, ''), coalesce(retry_count, 0)
		FROM public.event_bus WHERE id = $1`, id).Scan(&r.status, &r.errorMessage, &r.retries))
	return r
}

// publishMeta inserts an event through publish_event with metadata,
// around the CLI's and the API's checks, as a trigger or a script would.
func (e *env) publishMeta(eventType, payload, metadata string) string {
	e.t.Helper()
	var id string
	require.NoError(e.t, e.db.QueryRow(e.t.Context(),
		`SELECT public.publish_event($1, 'test', 'a-1', $2::jsonb, $3::jsonb, NULL)::text`, eventType, payload, metadata).Scan(&id))
	return id
}

// streamByID returns the stream's messages by event id.
func (e *env) streamByID() map[string]message {
	got := map[string]message{}
	for _, m := range e.streamMessages() {
		got[m.Body.ID] = m
	}
	return got
}

const leadV1 = `{"lead_id": "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d", "first_name": "Ada", "last_name": null, "phone": null,
	"status_id": null, "lead_source_id": null, "organization_id": null}`

// A payload its schema refuses fails at once (one attempt, no retries),
// with the JSON path and the rule in error_message, is dead-lettered, and
// does not hold back the event behind it, which carries the version.
func TestSchemaViolationFailsAtOnceAndTheStreamFlowsOn(t *testing.T) {
	t.Parallel()
	e := setup(t) // EVENTBUS_MAX_RETRIES: 5 by default
	e.startRelay()
	bad := e.publishMeta("lead.created", strings.Replace(leadV1, `"first_name": "Ada"`, `"first_name": 42`, 1), `{"trigger": "insert"}`)
	leads := e.insertLeads(t.Context(), "Grace Hopper")
	good := e.eventIDs(t.Context(), "lead.created", leads)[0]

	eventually(t, 60*time.Second, func() (bool, string) {
		b, g := e.rowOf(bad), e.rowOf(good)
		return b.status == "failed" && g.status == "processed", fmt.Sprintf("bad %+v, good %+v", b, g)
	})
	b := e.rowOf(bad)
	assert.Equal(t, 1, b.retries, "failed at the first attempt, not retried")
	assert.Contains(t, b.errorMessage, "lead.created version 1")
	assert.Contains(t, b.errorMessage, "at $.first_name: type: got number, want null or string")
	assert.NotContains(t, b.errorMessage, "\n")

	msgs := e.streamByID()
	assert.NotContains(t, msgs, bad, "the refused event never reaches the stream")
	require.Contains(t, msgs, good)
	assert.Equal(t, "1", msgs[good].Header.Get("Eventbus-Event-Version"))

	eventually(t, 30*time.Second, func() (bool, string) {
		for _, m := range e.deadLetters() {
			if m.Header.Get("Nats-Msg-Id") == bad+":failed:1" {
				assert.Contains(t, m.Header.Get("Eventbus-Error"), "$.first_name")
				return true, ""
			}
		}
		return false, "the dead letter of " + bad
	})
}

// Eventbus-Event-Version: the current version, or metadata.version; an
// unregistered metadata.version fails the event; an unregistered type has
// no header. A schema registered while the relay runs applies within
// seconds.
func TestEventVersionHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	require.Equal(t, "2", e.setType("lead.created", `{"type": "object", "required": ["lead"], "properties": {"lead": {"type": "object"}}}`))
	e.startRelay()

	current := e.publishMeta("lead.created", `{"lead": {"id": 1}}`, `{}`)
	named := e.publishMeta("lead.created", leadV1, `{"version": 1}`)
	unknown := e.publishMeta("lead.created", leadV1, `{"version": 9}`)
	wrongForV1 := e.publishMeta("lead.created", `{"lead": {"id": 1}, "lead_id": 7}`, `{"version": 1}`)
	plain := e.publishMeta("order.placed", `{"n": 1}`, `{}`)
	eventually(t, 60*time.Second, func() (bool, string) {
		c := e.statusCounts()
		return c["processed"] == 3 && c["failed"] == 2, fmt.Sprintf("statuses %v", c)
	})
	msgs := e.streamByID()
	assert.Equal(t, "2", msgs[current].Header.Get("Eventbus-Event-Version"), "the current version")
	assert.Equal(t, "1", msgs[named].Header.Get("Eventbus-Event-Version"), "metadata.version")
	require.Contains(t, msgs, plain)
	assert.NotContains(t, msgs[plain].Header, "Eventbus-Event-Version", "an unregistered type has no version")
	u := e.rowOf(unknown)
	assert.Equal(t, typedRow{"failed", "metadata.version 9 is not a registered version of lead.created (registered: 1, 2)", 1}, u)
	assert.Contains(t, e.rowOf(wrongForV1).errorMessage, "lead.created version 1: at $.lead_id: type: got number, want string")

	// The running relay follows a new type within seconds: no restart.
	started := time.Now()
	require.Equal(t, "1", e.setType("order.placed", `{"type": "object", "required": ["order_id"]}`))
	var refused string
	eventually(t, 15*time.Second, func() (bool, string) {
		id := e.publishMeta("order.placed", `{"n": 2}`, `{}`)
		for {
			r := e.rowOf(id)
			switch r.status {
			case "failed":
				refused = id
				return true, ""
			case "processed":
				return false, "order.placed still published unchecked"
			}
			if time.Since(started) > 15*time.Second {
				return false, "not settled"
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Logf("the relay followed the new schema after %s", time.Since(started).Round(time.Millisecond))
	assert.Contains(t, e.rowOf(refused).errorMessage, "at $.order_id: required")

	// A replay carries the version too (and is not checked again).
	out, err := e.command("replay", "--id", named).CombinedOutput()
	require.NoError(t, err, "%s", out)
	eventually(t, 30*time.Second, func() (bool, string) {
		for _, m := range e.streamMessages() {
			if m.Body.ID == named && m.Header.Get("Eventbus-Replay") == "true" {
				assert.Equal(t, "1", m.Header.Get("Eventbus-Event-Version"))
				return true, ""
			}
		}
		return false, "the replay of " + named
	})
}

// `eventbus publish` and POST /api/events check the payload before they
// insert: the same error, nothing inserted. GET /api/asyncapi serves the
// document, JSON or YAML.
func TestPublishChecksBeforeInserting(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	token := randomHex(t, 32)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_ADMIN_TOKEN="+token))
	badPayload := strings.Replace(leadV1, `"lead_id": "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d"`, `"lead_id": 7`, 1)

	cmd := e.command("publish", "--event-type", "lead.created", "--aggregate-type", "lead", "--aggregate-id", "l-1", "--payload", badPayload)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.Error(t, cmd.Run())
	assert.NotZero(t, cmd.ProcessState.ExitCode())
	assert.Equal(t, "eventbus publish: payload does not match the schema of lead.created version 1: at $.lead_id: type: got number, want string\n", stderr.String())
	out, err := e.command("publish", "--event-type", "lead.created", "--aggregate-type", "lead", "--aggregate-id", "l-1",
		"--payload", leadV1, "--metadata", `{"version": 3}`).CombinedOutput()
	require.Error(t, err)
	assert.Equal(t, "eventbus publish: metadata.version 3 is not a registered version of lead.created (registered: 1)\n", string(out))
	assert.Empty(t, e.statusCounts(), "nothing inserted")

	e.startRelay()
	waitHTTP(t, 60*time.Second, addr, "/readyz", http.StatusOK)
	status, body := apiDo(t, addr, http.MethodPost, "/api/events", token, map[string]any{
		"event_type": "lead.created", "aggregate_type": "lead", "aggregate_id": "l-1", "payload": json.RawMessage(badPayload)})
	assert.Equal(t, http.StatusUnprocessableEntity, status, body)
	assert.JSONEq(t, `{"error": "payload does not match the schema of lead.created version 1: at $.lead_id: type: got number, want string"}`, body)
	assert.Empty(t, e.statusCounts(), "nothing inserted")
	status, body = apiDo(t, addr, http.MethodPost, "/api/events", token, map[string]any{
		"event_type": "lead.created", "aggregate_type": "lead", "aggregate_id": "l-1"})
	assert.Equal(t, http.StatusCreated, status, "an absent payload is {}, which the lenient seeded schema takes: %s", body)
	status, body = apiDo(t, addr, http.MethodPost, "/api/events", token, map[string]any{
		"event_type": "lead.created", "aggregate_type": "lead", "aggregate_id": "l-1", "payload": json.RawMessage(leadV1)})
	assert.Equal(t, http.StatusCreated, status, body)
	status, body = apiDo(t, addr, http.MethodPost, "/api/events", token, map[string]any{
		"event_type": "order.placed", "aggregate_type": "order", "aggregate_id": "o-1", "payload": map[string]any{"anything": true}})
	assert.Equal(t, http.StatusCreated, status, "an unregistered type is not checked: %s", body)
	e.waitProcessed(3, 60*time.Second)

	status, body = apiDo(t, addr, http.MethodGet, "/api/asyncapi", token, nil)
	require.Equal(t, http.StatusOK, status, body)
	var doc struct {
		AsyncAPI string                    `json:"asyncapi"`
		Channels map[string]map[string]any `json:"channels"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &doc), body)
	assert.Equal(t, "3.0.0", doc.AsyncAPI)
	assert.Equal(t, "events.lead.created", doc.Channels["lead.created"]["address"])
	status, body = apiDo(t, addr, http.MethodGet, "/api/asyncapi?format=yaml", token, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.True(t, strings.HasPrefix(body, "asyncapi: 3.0.0\n"), body[:min(len(body), 80)])
	status, _ = apiDo(t, addr, http.MethodGet, "/api/asyncapi", "wrong", nil)
	assert.Equal(t, http.StatusUnauthorized, status, "under the monitor's auth")
}

// `eventbus types set` refuses what is not a JSON Schema 2020-12 in one
// line; `types list` shows the versions.
func TestTypesCommands(t *testing.T) {
	t.Parallel()
	e := setup(t)
	file := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"type": "objekt"}`), 0o600))
	out, err := e.command("types", "set", "order.placed", "--schema", file).CombinedOutput()
	require.Error(t, err)
	assert.Equal(t, 1, strings.Count(string(out), "\n"), "one line: %s", out)
	assert.Contains(t, string(out), "not a valid JSON Schema 2020-12: at $.type")

	assert.Equal(t, "1", e.setType("order.placed", ""))
	out, err = e.command("types", "set", "order.placed", "--description", "an order was placed").Output()
	require.NoError(t, err)
	assert.Equal(t, "2\n", string(out))

	out, err = e.command("types", "list", "--json").Output()
	require.NoError(t, err)
	var list []struct {
		EventType   string           `json:"event_type"`
		Version     int              `json:"version"`
		Schema      *json.RawMessage `json:"schema"`
		Description string           `json:"description"`
	}
	require.NoError(t, json.Unmarshal(out, &list), "%s", out)
	var got []string
	for _, v := range list {
		got = append(got, fmt.Sprintf("%s/%d/%t/%s", v.EventType, v.Version, v.Schema != nil, v.Description))
	}
	assert.Equal(t, []string{
		"lead.created/1/true/A lead was inserted into public.leads (trigger on_lead_created)",
		"lead.status_updated/1/true/The status_id of a lead changed (trigger on_lead_status_updated)",
		"order.placed/1/false/", "order.placed/2/false/an order was placed",
	}, got)
	out, err = e.command("types", "list").Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), "EVENT TYPE")
	assert.Len(t, strings.Split(strings.TrimSpace(string(out)), "\n"), 5)
}

// The least-privilege relay role reads the catalog (SELECT on event_types)
// and follows it (LISTEN needs no grant).
func TestLeastPrivilegeRelayChecksPayloads(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, roleURL := e.relayRole()
	p := e.startRelayEnv("EVENTBUS_DATABASE_URL=" + roleURL)
	bad := e.publishMeta("lead.created", strings.Replace(leadV1, `"5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d"`, `null`, 1), `{}`)
	eventually(t, 60*time.Second, func() (bool, string) {
		r := e.rowOf(bad)
		return r.status == "failed", fmt.Sprintf("%+v", r)
	})
	assert.Equal(t, 1, e.rowOf(bad).retries)
	assert.Contains(t, e.rowOf(bad).errorMessage, "at $.lead_id: type: got null, want string")

	require.Equal(t, "1", e.setType("order.placed", `{"type": "object", "required": ["order_id"]}`))
	eventually(t, 15*time.Second, func() (bool, string) {
		id := e.publishMeta("order.placed", `{}`, `{}`)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			switch e.rowOf(id).status {
			case "failed":
				return true, ""
			case "processed":
				return false, "order.placed published unchecked"
			}
		}
		return false, "not settled"
	})
	assert.NotContains(t, p.out.String(), "event types not loaded")
	assert.NotContains(t, p.out.String(), "not following changes")
}

package publisher

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

func sampleEvent() *event.Event {
	return &event.Event{
		ID:             "0b9d2a3e-7c55-4c1e-9d5e-6c1f2f7d8a90",
		EventType:      "lead.created",
		AggregateType:  "lead",
		AggregateID:    "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d",
		OrganizationID: "11111111-1111-1111-1111-111111111111",
		Payload:        []byte(`{"lead_id": "5f1c7a52", "phone": "+79991234567"}`),
		Metadata:       []byte(`{"trigger": "insert"}`),
		CreatedAt:      time.Date(2026, 11, 26, 15, 7, 50, 123456000, time.UTC),
	}
}

func TestBuildMessage(t *testing.T) {
	m, err := BuildMessage("events", sampleEvent())
	require.NoError(t, err)
	assert.Equal(t, "events.lead.created", m.Subject)
	assert.Equal(t, "lead.created", m.Header.Get(HeaderEventType))
	assert.Equal(t, "lead", m.Header.Get(HeaderAggregateType))
	assert.Equal(t, "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d", m.Header.Get(HeaderAggregateID))
	assert.Equal(t, "11111111-1111-1111-1111-111111111111", m.Header.Get(HeaderOrganizationID))
	assert.JSONEq(t, `{
		"id": "0b9d2a3e-7c55-4c1e-9d5e-6c1f2f7d8a90",
		"event_type": "lead.created",
		"aggregate_type": "lead",
		"aggregate_id": "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d",
		"organization_id": "11111111-1111-1111-1111-111111111111",
		"payload": {"lead_id": "5f1c7a52", "phone": "+79991234567"},
		"metadata": {"trigger": "insert"},
		"created_at": "2026-11-26T15:07:50.123456Z"
	}`, string(m.Data))
	// Raw JSON passes through byte for byte, spacing included.
	assert.Contains(t, string(m.Data), `"payload":{"lead_id": "5f1c7a52", "phone": "+79991234567"}`)
}

func TestBuildMessageNulls(t *testing.T) {
	e := sampleEvent()
	e.OrganizationID, e.Payload, e.Metadata, e.CreatedAt = "", nil, nil, time.Time{}
	m, err := BuildMessage("events", e)
	require.NoError(t, err)
	_, present := m.Header[HeaderOrganizationID]
	assert.False(t, present, "no organization header when organization_id is NULL")
	var body map[string]any
	require.NoError(t, json.Unmarshal(m.Data, &body))
	for _, k := range []string{"organization_id", "payload", "metadata", "created_at"} {
		v, ok := body[k]
		assert.True(t, ok, "key %s present", k)
		assert.Nil(t, v, "key %s is null", k)
	}
}

func TestBuildMessageRejects(t *testing.T) {
	for name, mutate := range map[string]func(*event.Event){
		"space in event_type":    func(e *event.Event) { e.EventType = "lead created" },
		"wildcard *":             func(e *event.Event) { e.EventType = "lead.*" },
		"wildcard >":             func(e *event.Event) { e.EventType = "lead.>" },
		"empty token":            func(e *event.Event) { e.EventType = "lead..created" },
		"empty event_type":       func(e *event.Event) { e.EventType = "" },
		"newline in aggregate":   func(e *event.Event) { e.AggregateID = "a\r\nNats-Msg-Id: x" },
		"undecodable row":        func(e *event.Event) { e.DecodeErr = errors.New("column id missing") },
		"tab in event_type":      func(e *event.Event) { e.EventType = "lead\tcreated" },
		"trailing dot":           func(e *event.Event) { e.EventType = "lead." },
		"control char in header": func(e *event.Event) { e.AggregateType = "le\nad" },
	} {
		t.Run(name, func(t *testing.T) {
			e := sampleEvent()
			mutate(e)
			_, err := BuildMessage("events", e)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrRejected)
			assert.NotContains(t, err.Error(), "\n", "error_message stays one line")
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and backslash \`, "line\nbreak\ttab\r", "\x00\x01\x1f\x7f",
		"unicode: привет, 日本語, emoji 🎉", "invalid \xff\xfe utf8", "sep \u2028 \u2029", "<html>&amp;",
	} {
		got := appendString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(got, &back), "valid JSON for %q: %s", s, got)
		want, _ := json.Marshal(s)
		var wantBack string
		require.NoError(t, json.Unmarshal(want, &wantBack))
		assert.Equal(t, wantBack, back, "round trip of %q", s)
	}
}

func TestWireSizeMatchesLimitCheck(t *testing.T) {
	e := sampleEvent()
	e.Payload = []byte(`"` + strings.Repeat("x", 1000) + `"`)
	m, err := BuildMessage("events", e)
	require.NoError(t, err)
	assert.Greater(t, wireSize(m), len(m.Data), "headers count against max_payload")
}

func FuzzAppendBody(f *testing.F) {
	f.Add("lead.created", "lead", "id-1", "\x00\"\\\n\xff")
	f.Add("a.b", "agg", "привет", "🎉\u2028")
	f.Fuzz(func(t *testing.T, eventType, aggType, aggID, org string) {
		e := sampleEvent()
		e.EventType, e.AggregateType, e.AggregateID, e.OrganizationID = eventType, aggType, aggID, org
		body := AppendBody(nil, e)
		var decoded map[string]any
		if err := json.Unmarshal(body, &decoded); err != nil {
			t.Fatalf("invalid JSON body %q: %v", body, err)
		}
		if len(decoded) != 8 {
			t.Fatalf("body has %d keys, want 8: %s", len(decoded), body)
		}
		if utf8.ValidString(aggID) && decoded["aggregate_id"] != aggID {
			t.Fatalf("aggregate_id %q came back as %q", aggID, decoded["aggregate_id"])
		}
		// The whole message: either a per-event rejection, or a subject and
		// headers a NATS server accepts, with the same body.
		m, err := BuildMessage("events", e)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("BuildMessage: %v is not a per-event rejection", err)
			}
			return
		}
		if strings.ContainsAny(m.Subject, " \t\r\n") || !strings.HasPrefix(m.Subject, "events.") {
			t.Fatalf("bad subject %q", m.Subject)
		}
		for name, values := range m.Header {
			for _, v := range values {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("header %s carries a line break: %q", name, v)
				}
			}
		}
		if !bytes.Equal(m.Data, body) {
			t.Fatalf("BuildMessage body differs from AppendBody's")
		}
	})
}

func BenchmarkBuildMessage(b *testing.B) {
	e := sampleEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildMessage("events", e); err != nil {
			b.Fatal(err)
		}
	}
}

// A subject longer than the server's control line would make the server drop
// the connection instead of answering: it is a per-event error instead.
func TestSubjectRefusesEventTypesTooLongForAControlLine(t *testing.T) {
	_, err := Subject("events", "long."+strings.Repeat("t", MaxEventTypeLen))
	require.ErrorIs(t, err, ErrRejected)
	assert.Contains(t, err.Error(), "bytes long")
	assert.Less(t, len(err.Error()), 200, "the error quotes only the start of the event type")
	_, err = Subject("events", "ok."+strings.Repeat("t", MaxEventTypeLen-3))
	require.NoError(t, err)
}

func TestCommitLSNHeaderOnlyOnStreamedEvents(t *testing.T) {
	e := &event.Event{ID: "6f0c1a52-0000-4000-8000-000000000001", EventType: "lead.created", AggregateType: "lead", AggregateID: "1"}
	m, err := BuildMessage("events", e)
	require.NoError(t, err)
	assert.NotContains(t, m.Header, HeaderCommitLSN, "read from the table: no commit position")
	e.CommitLSN = 0x1_016B3748
	m, err = BuildMessage("events", e)
	require.NoError(t, err)
	assert.Equal(t, "1/16B3748", m.Header.Get(HeaderCommitLSN))
}

func TestPublishedByHeaderFromMetadata(t *testing.T) {
	for metadata, want := range map[string]string{
		`{"trigger":"insert","published_by":"6f0c1a52-0000-4000-8000-000000000009"}`: "6f0c1a52-0000-4000-8000-000000000009",
		`{"published_by":"service_role"}`:                                            "service_role",
		`{"trigger":"insert"}`:                                                       "",
		`{"published_by":42}`:                                                        "",
		`{"published_by":"a\nb"}`:                                                    "",
		`{"note":"published_by"}`:                                                    "",
	} {
		e := &event.Event{ID: "6f0c1a52-0000-4000-8000-000000000001", EventType: "lead.created", AggregateType: "lead", AggregateID: "1", Metadata: []byte(metadata)}
		m, err := BuildMessage("events", e)
		require.NoError(t, err, metadata)
		assert.Equal(t, want, m.Header.Get(HeaderPublishedBy), metadata)
		if want == "" {
			assert.NotContains(t, m.Header, HeaderPublishedBy, metadata)
		}
	}
}

func TestEventVersionHeaderOnlyWhenGiven(t *testing.T) {
	e := sampleEvent()
	m, err := buildMessage("events", e, "")
	require.NoError(t, err)
	assert.NotContains(t, m.Header, HeaderEventVersion, "a type not registered: no version")
	m, err = buildMessage("events", e, "3")
	require.NoError(t, err)
	assert.Equal(t, "3", m.Header.Get(HeaderEventVersion))
}

// The version header costs no allocation of its own: the same as
// BenchmarkBuildMessage.
func BenchmarkBuildMessageWithVersion(b *testing.B) {
	e := sampleEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildMessage("events", e, "2"); err != nil {
			b.Fatal(err)
		}
	}
}

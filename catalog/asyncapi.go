package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DocOptions is what the AsyncAPI document says beyond the catalog.
type DocOptions struct {
	// SubjectPrefix is EVENTBUS_SUBJECT_PREFIX: channel addresses are
	// <prefix>.<event_type>.
	SubjectPrefix string
	// NATSURL is EVENTBUS_NATS_URL (one URL or several, comma-separated):
	// one server per URL, host and port only, so no credential is copied.
	NATSURL string
	// Version is the document's info.version (eventbus's build version).
	Version string
}

// obj is a JSON object that keeps its keys in order, so that the document
// reads top-down (asyncapi, info, servers, channels, operations) in both
// JSON and YAML.
type obj []field

type field struct {
	key   string
	value any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.key)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.key, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// AsyncAPI returns the AsyncAPI 3.0 document of the catalog as JSON: one
// channel per event type (versions: List's rows), one message per version
// (the current one titled so, and marked x-eventbus-current), the headers
// of publisher/message.go, the NATS servers, and for every channel the
// relay's send operation and a consumer's receive operation.
func AsyncAPI(versions []Version, opts DocOptions) ([]byte, error) {
	prefix := opts.SubjectPrefix
	if prefix == "" {
		prefix = "events"
	}
	byType := map[string][]Version{}
	var order []string
	for _, v := range versions {
		if byType[v.EventType] == nil {
			order = append(order, v.EventType)
		}
		byType[v.EventType] = append(byType[v.EventType], v)
	}
	ids := componentIDs(order)
	var channels, operations obj
	for _, t := range order {
		vs := byType[t]
		id := ids[t]
		current := vs[len(vs)-1].Version
		var messages obj
		var refs []any
		for _, v := range vs {
			key := "v" + strconv.Itoa(v.Version)
			messages = append(messages, field{key, versionMessage(v, v.Version == current)})
			refs = append(refs, ref("#/channels/"+id+"/messages/"+key))
		}
		desc := fmt.Sprintf("Events of type %s, published by the eventbus relay. Versions: %d; current: %d (header Eventbus-Event-Version).",
			t, len(vs), current)
		if d := vs[len(vs)-1].Description; d != "" {
			desc = d + ". " + desc
		}
		channels = append(channels, field{id, obj{
			{"address", prefix + "." + t},
			{"title", t},
			{"description", desc},
			{"messages", messages},
		}})
		operations = append(operations,
			field{"publish_" + id, obj{
				{"action", "send"},
				{"title", "The relay publishes " + t},
				{"summary", "eventbus publishes each committed " + t + " row of public.event_bus to JetStream, in commit order, at least once."},
				{"channel", ref("#/channels/" + id)},
				{"messages", refs},
			}},
			field{"consume_" + id, obj{
				{"action", "receive"},
				{"title", "Consumers receive " + t},
				{"summary", "Subscribe (a JetStream consumer on the stream) to " + prefix + "." + t + "; dedupe on Nats-Msg-Id; branch on Eventbus-Event-Version."},
				{"channel", ref("#/channels/" + id)},
				{"messages", refs},
			}})
	}
	doc := obj{
		{"asyncapi", "3.0.0"},
		{"info", obj{
			{"title", "eventbus events"},
			{"version", nonEmpty(opts.Version, "dev")},
			{"description", "The event types registered in public.event_types, as the eventbus relay publishes them to NATS JetStream. " +
				"Each message's body is the event envelope; its payload follows the schema of the version named by Eventbus-Event-Version."},
		}},
		{"defaultContentType", "application/json"},
		{"servers", servers(opts.NATSURL)},
		{"channels", channels},
		{"operations", operations},
	}
	if len(channels) == 0 {
		// A document needs no channel; an empty object says "none" in both forms.
		doc[4].value, doc[5].value = obj{}, obj{}
	}
	return json.Marshal(doc)
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func ref(to string) obj { return obj{{"$ref", to}} }

// componentIDs gives each event type a channel id: the type itself, with
// any character but [A-Za-z0-9_.-] as _ (ids are JSON pointer tokens of
// the $refs), made unique.
func componentIDs(types []string) map[string]string {
	ids := make(map[string]string, len(types))
	taken := map[string]bool{}
	for _, t := range types {
		id := strings.Map(func(r rune) rune {
			if r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, t)
		for base, n := id, 2; taken[id]; n++ {
			id = base + "_" + strconv.Itoa(n)
		}
		taken[id] = true
		ids[t] = id
	}
	return ids
}

// servers lists the NATS servers of url, host:port only.
func servers(natsURL string) obj {
	var out obj
	for i, u := range strings.Split(natsURL, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		host := u
		if p, err := url.Parse(u); err == nil && p.Host != "" {
			host = p.Host // without userinfo: no credential reaches the document
		} else if at := strings.LastIndex(u, "@"); at >= 0 {
			host = u[at+1:]
		}
		name := "nats"
		if i > 0 {
			name += "-" + strconv.Itoa(i+1)
		}
		out = append(out, field{name, obj{
			{"host", host},
			{"protocol", "nats"},
			{"description", "NATS JetStream; the relay's stream binds <prefix>.>"},
		}})
	}
	if out == nil {
		out = obj{{"nats", obj{{"host", "127.0.0.1:4222"}, {"protocol", "nats"}}}}
	}
	return out
}

// versionMessage is one version's message: the headers and the envelope, whose
// payload is the version's schema (any JSON when it has none).
func versionMessage(v Version, current bool) obj {
	title := fmt.Sprintf("%s v%d", v.EventType, v.Version)
	if current {
		title += " (current)"
	}
	var payload any = obj{{"description", "any JSON: this version has no schema"}}
	if v.Schema != nil {
		payload = embedded(v.Schema)
	}
	str := func(desc string) obj { return obj{{"type", "string"}, {"description", desc}} }
	headers := obj{
		{"type", "object"},
		{"properties", obj{
			{"Nats-Msg-Id", str("the event's id (JetStream deduplication); a replay's is <id>:replay:<token>")},
			{"Eventbus-Event-Type", obj{{"type", "string"}, {"const", v.EventType}}},
			{"Eventbus-Event-Version", obj{{"type", "string"}, {"const", strconv.Itoa(v.Version)},
				{"description", "metadata.version when the publisher set it, else the current version when it was published"}}},
			{"Eventbus-Aggregate-Type", str("the event's aggregate_type")},
			{"Eventbus-Aggregate-Id", str("the event's aggregate_id")},
			{"Eventbus-Organization-Id", str("the event's organization_id; absent when null")},
			{"Eventbus-Commit-Lsn", str("the commit position of the inserting transaction (0/16B3748), on events read from the replication stream")},
			{"Eventbus-Published-By", str("the Supabase user who called publish_event (metadata.published_by)")},
			{"Eventbus-Replay", obj{{"type", "string"}, {"const", "true"}, {"description", "on events republished by eventbus replay"}}},
			{"Nats-Expected-Stream", str("the relay's stream")},
		}},
		{"required", []string{"Nats-Msg-Id", "Eventbus-Event-Type", "Eventbus-Event-Version", "Eventbus-Aggregate-Type", "Eventbus-Aggregate-Id"}},
	}
	nullable := func(desc string) obj { return obj{{"type", []string{"string", "null"}}, {"description", desc}} }
	envelope := obj{
		{"type", "object"},
		{"properties", obj{
			{"id", obj{{"type", "string"}, {"format", "uuid"}}},
			{"event_type", obj{{"type", "string"}, {"const", v.EventType}}},
			{"aggregate_type", obj{{"type", "string"}}},
			{"aggregate_id", obj{{"type", "string"}}},
			{"organization_id", nullable("uuid of the organization")},
			{"payload", payload},
			{"metadata", obj{{"description", "the row's metadata (JSON), e.g. {\"trigger\": \"insert\"}; version: the version the publisher named"}}},
			{"created_at", nullable("RFC 3339, UTC")},
		}},
		{"required", []string{"id", "event_type", "aggregate_type", "aggregate_id", "organization_id", "payload", "metadata", "created_at"}},
	}
	m := obj{
		{"name", fmt.Sprintf("%s.v%d", v.EventType, v.Version)},
		{"title", title},
	}
	if v.Description != "" {
		m = append(m, field{"summary", v.Description})
	}
	return append(m,
		field{"contentType", "application/json"},
		field{"headers", headers},
		field{"payload", envelope},
		field{"x-eventbus-version", v.Version},
		field{"x-eventbus-current", current},
	)
}

// embedded is a version's schema as a subschema of the envelope: its
// $schema goes, since a nested schema takes its dialect from the
// document's (and the parser reads AsyncAPI's JSON Schema superset).
func embedded(schema json.RawMessage) any {
	var m map[string]json.RawMessage
	if json.Unmarshal(schema, &m) != nil {
		return schema // true or false
	}
	if _, ok := m["$schema"]; !ok {
		return schema
	}
	delete(m, "$schema")
	b, err := json.Marshal(m)
	if err != nil {
		return schema
	}
	return json.RawMessage(b)
}

// YAML converts a JSON document to YAML in block style, keys in the JSON's
// order.
func YAML(doc []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(doc, &n); err != nil {
		return nil, fmt.Errorf("convert to YAML: %w", err)
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style &^= yaml.FlowStyle | yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			n.Style = 0 // the encoder quotes what would read as another type
		}
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("convert to YAML: %w", err)
	}
	return b.Bytes(), nil
}

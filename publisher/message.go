package publisher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/event"
)

// Header names set on every message (see CONTRACT.md, "On NATS").
const (
	HeaderEventType      = "Eventbus-Event-Type"
	HeaderAggregateType  = "Eventbus-Aggregate-Type"
	HeaderAggregateID    = "Eventbus-Aggregate-Id"
	HeaderOrganizationID = "Eventbus-Organization-Id"
	HeaderReplay         = "Eventbus-Replay"
	// HeaderCommitLSN is the commit position (PostgreSQL's form, 0/16B3748)
	// of the transaction that inserted the event, on events the relay read
	// from the replication stream: live events carry it in increasing order
	// (the stream's order); backfilled, redriven and replayed ones, read from
	// the table, do not.
	HeaderCommitLSN = "Eventbus-Commit-Lsn"
	// HeaderPublishedBy is metadata.published_by: the id of the Supabase
	// user who called publish_event, stamped by the function itself so that
	// no caller can forge it; absent when the metadata has none (trusted
	// callers without a user, rows written by other means).
	HeaderPublishedBy = "Eventbus-Published-By"
	// HeaderEventVersion is the version of the event's type in the
	// catalog (public.event_types) that its payload was checked against:
	// metadata.version when the publisher set it, else the current version
	// at publish time; absent for a type that is not registered.
	HeaderEventVersion = "Eventbus-Event-Version"
)

// Subject returns the subject of an event: <prefix>.<event_type>.
func Subject(prefix, eventType string) (string, error) {
	if len(eventType) > MaxEventTypeLen {
		return "", rejected("event_type %q… is %d bytes long, longer than the %d a subject may take (the NATS server refuses control lines over 4 KiB)",
			eventType[:40], len(eventType), MaxEventTypeLen)
	}
	if err := config.ValidSubject(eventType); err != nil {
		return "", rejected("event_type %q is not a valid NATS subject: it %v", eventType, err)
	}
	return prefix + "." + eventType, nil
}

// MaxEventTypeLen bounds the event types the relay publishes. A PUB line
// carries the subject and a reply subject and must fit the server's
// max_control_line (4 KiB by default), or the server drops the connection
// instead of answering. publish_event allows 255 characters; this catches
// rows inserted around it.
const MaxEventTypeLen = 1024

// BuildMessage returns the NATS message for e: subject, headers and JSON body
// as CONTRACT.md describes. The Nats-Msg-Id header is set by the caller, since
// a replay uses a different one.
func BuildMessage(prefix string, e *event.Event) (*nats.Msg, error) {
	return buildMessage(prefix, e, "")
}

// buildMessage is BuildMessage with the Eventbus-Event-Version header
// (none when version is "").
func buildMessage(prefix string, e *event.Event, version string) (*nats.Msg, error) {
	if e.DecodeErr != nil {
		return nil, rejected("cannot decode the event row: %v", e.DecodeErr)
	}
	subject, err := Subject(prefix, e.EventType)
	if err != nil {
		return nil, err
	}
	for _, f := range [...]struct{ name, value string }{
		{HeaderEventType, e.EventType}, {HeaderAggregateType, e.AggregateType},
		{HeaderAggregateID, e.AggregateID}, {HeaderOrganizationID, e.OrganizationID},
	} {
		if strings.ContainsAny(f.value, "\r\n") {
			return nil, rejected("%s value contains a line break, which a NATS header cannot carry", f.name)
		}
	}
	// One backing array for every header value, room for the ones callers
	// add (Nats-Msg-Id, Nats-Expected-Stream, Eventbus-Replay), and a body
	// allocated once: this runs for every event.
	values := [...]string{e.EventType, e.AggregateType, e.AggregateID, e.OrganizationID, "", publishedBy(e.Metadata), version}
	h := make(nats.Header, len(values)+3)
	h[HeaderEventType] = values[0:1:1]
	h[HeaderAggregateType] = values[1:2:2]
	h[HeaderAggregateID] = values[2:3:3]
	if e.OrganizationID != "" {
		h[HeaderOrganizationID] = values[3:4:4]
	}
	if e.CommitLSN != 0 {
		values[4] = FormatLSN(e.CommitLSN)
		h[HeaderCommitLSN] = values[4:5:5]
	}
	if values[5] != "" {
		h[HeaderPublishedBy] = values[5:6:6]
	}
	if version != "" {
		h[HeaderEventVersion] = values[6:7:7]
	}
	body := make([]byte, 0, bodySize(e))
	return &nats.Msg{Subject: subject, Header: h, Data: AppendBody(body, e)}, nil
}

// bodySize is a close upper bound of the JSON body's length when no text
// field needs escaping.
func bodySize(e *event.Event) int {
	const keysAndTime = 160 // keys, quotes, commas and an RFC 3339 time
	return keysAndTime + len(e.ID) + len(e.EventType) + len(e.AggregateType) + len(e.AggregateID) +
		len(e.OrganizationID) + len(e.Payload) + len(e.Metadata)
}

// AppendBody appends the JSON body of e to dst. Payload and metadata are
// copied as the raw JSON Postgres produced; text fields are JSON-escaped.
func AppendBody(dst []byte, e *event.Event) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"event_type":`...)
	dst = appendString(dst, e.EventType)
	dst = append(dst, `,"aggregate_type":`...)
	dst = appendString(dst, e.AggregateType)
	dst = append(dst, `,"aggregate_id":`...)
	dst = appendString(dst, e.AggregateID)
	dst = append(dst, `,"organization_id":`...)
	if e.OrganizationID == "" {
		dst = append(dst, "null"...)
	} else {
		dst = appendString(dst, e.OrganizationID)
	}
	dst = append(dst, `,"payload":`...)
	dst = appendRaw(dst, e.Payload)
	dst = append(dst, `,"metadata":`...)
	dst = appendRaw(dst, e.Metadata)
	dst = append(dst, `,"created_at":`...)
	if e.CreatedAt.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = e.CreatedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

func appendRaw(dst, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does, so the body is always valid JSON.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript consumers.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// wireSize is the size the NATS client checks against the server's
// max_payload: the body plus the encoded headers.
func wireSize(m *nats.Msg) int {
	n := len(m.Data)
	if len(m.Header) > 0 {
		n += len("NATS/1.0\r\n\r\n")
		for k, vs := range m.Header {
			for _, v := range vs {
				n += len(k) + len(": ") + len(v) + len("\r\n")
			}
		}
	}
	return n
}

// FormatLSN writes a WAL position as PostgreSQL does: two hexadecimal
// numbers, the high and low 32 bits, separated by a slash (0/16B3748).
func FormatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", lsn>>32, lsn&0xFFFFFFFF)
}

var publishedByKey = []byte(`"published_by"`)

// publishedBy returns metadata.published_by when it is a string a header can
// carry, else "". Most metadata has no such key; it is only decoded when the
// key appears in it.
func publishedBy(metadata []byte) string {
	if !bytes.Contains(metadata, publishedByKey) {
		return ""
	}
	var m struct {
		PublishedBy string `json:"published_by"`
	}
	if json.Unmarshal(metadata, &m) != nil || len(m.PublishedBy) > 255 || strings.ContainsAny(m.PublishedBy, "\r\n") {
		return ""
	}
	return m.PublishedBy
}

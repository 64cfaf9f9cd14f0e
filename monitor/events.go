package monitor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
)

// Event is an event_bus row as the API shows it: outbox.StoredEvent in the
// JSON it has always had. The monitor keeps a type of its own for it, with
// the conversion in apiEvent, rather than JSON tags on the outbox type,
// because event.Event (which StoredEvent embeds) holds payload and metadata
// as bytes, which encoding/json would write as base64, and a NULL
// organization as "" where the API writes null.
type Event struct {
	ID             string          `json:"id"`
	EventType      string          `json:"event_type"`
	AggregateType  string          `json:"aggregate_type"`
	AggregateID    string          `json:"aggregate_id"`
	OrganizationID *string         `json:"organization_id"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       json.RawMessage `json:"metadata"`
	Status         string          `json:"status"`
	CreatedAt      *time.Time      `json:"created_at"`
	ProcessedAt    *time.Time      `json:"processed_at"`
	RetryCount     int             `json:"retry_count"`
	ErrorMessage   *string         `json:"error_message"`
}

// apiEvent converts a stored row: a NULL payload or metadata shows as {}, a
// NULL created_at (outbox reads it as the zero time) as null, times in UTC.
func apiEvent(s outbox.StoredEvent) Event {
	e := Event{
		ID: s.ID, EventType: s.EventType, AggregateType: s.AggregateType, AggregateID: s.AggregateID,
		Payload: orEmptyObject(s.Payload), Metadata: orEmptyObject(s.Metadata), Status: s.Status,
		RetryCount: s.RetryCount, ErrorMessage: s.ErrorMessage,
	}
	if s.OrganizationID != "" {
		e.OrganizationID = &s.OrganizationID
	}
	if !s.CreatedAt.IsZero() {
		at := s.CreatedAt.UTC()
		e.CreatedAt = &at
	}
	if s.ProcessedAt != nil {
		at := s.ProcessedAt.UTC()
		e.ProcessedAt = &at
	}
	return e
}

func orEmptyObject(b []byte) json.RawMessage {
	if b == nil {
		return json.RawMessage("{}")
	}
	return b
}

func eventID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !event.ValidID(id) {
		return "", badRequest(http.StatusBadRequest, "%q is not an event id (a UUID)", id)
	}
	return id, nil
}

// fetchEvent reads one event as the caller sees it; not visible is 404.
func (s *Server) fetchEvent(ctx context.Context, c caller, id string) (Event, error) {
	var stored outbox.StoredEvent
	err := s.inTx(ctx, c, func(tx pgx.Tx) error {
		var err error
		stored, err = outbox.GetEvent(ctx, tx, id)
		return err
	})
	if errors.Is(err, outbox.ErrNotFound) {
		return Event{}, badRequest(http.StatusNotFound, "event %s not found", id)
	}
	return apiEvent(stored), err
}

func (s *Server) getEvent(r *http.Request, c caller) (int, any, error) {
	id, err := eventID(r)
	if err != nil {
		return 0, nil, err
	}
	e, err := s.fetchEvent(r.Context(), c, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, e, nil
}

// Page sizes of GET /api/events.
const (
	defaultLimit = 100
	maxLimit     = 500
)

// maxQuery bounds the text of q: a search term, not a document.
const maxQuery = 200

// countCap is where the count of matches stops: counting a broad filter
// exactly on a large table reads every row it matches, counting up to the
// cap reads at most countCap+1 (docs/BENCHMARKS.md "Search and analytics").
const countCap = 1000

// parseList validates the query string of GET /api/events and returns the
// filter of the page it asks for.
func parseList(v map[string][]string) (outbox.Filter, error) {
	f := outbox.Filter{NewestFirst: true, Limit: defaultLimit}
	get := func(name string) string {
		if vs := v[name]; len(vs) > 0 {
			return strings.TrimSpace(vs[0])
		}
		return ""
	}
	bad := func(format string, args ...any) (outbox.Filter, error) {
		return f, badRequest(http.StatusBadRequest, format, args...)
	}
	if st := get("status"); st != "" {
		if !event.ValidStatus(st) {
			return bad("status %q: want pending, processing, processed or failed", st)
		}
		f.Statuses = []string{st}
	}
	if et := get("event_type"); et != "" {
		f.EventTypes = []string{et}
	}
	if at := get("aggregate_type"); at != "" {
		f.AggregateTypes = []string{at}
	}
	f.AggregateIDPrefix = get("aggregate_id")
	if org := get("organization_id"); org != "" {
		if !event.ValidID(org) {
			return bad("organization_id %q is not a UUID", org)
		}
		f.OrganizationID = org
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if raw := get(p.name); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				return bad("%s %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", p.name, raw)
			}
			*p.t = t
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Since.After(f.Until) {
		return bad("since %s is after until %s", f.Since.Format(time.RFC3339Nano), f.Until.Format(time.RFC3339Nano))
	}
	if raw := get("payload"); raw != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &obj); err != nil || obj == nil {
			return bad(`payload %q is not a JSON object such as {"lead_id": "42"}: events whose payload contains it are listed`, raw)
		}
		f.PayloadContains = []byte(raw)
	}
	if q := get("q"); q != "" {
		if utf8.RuneCountInString(q) > maxQuery {
			return bad("q is longer than %d characters", maxQuery)
		}
		f.Text = q
	}
	if raw := get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxLimit {
			return bad("limit %q: want a whole number from 1 to %d", raw, maxLimit)
		}
		f.Limit = n
	}
	if raw := get("cursor"); raw != "" {
		before, err := decodeCursor(raw)
		if err != nil {
			return bad("cursor %q is not a cursor this API returned (next_cursor)", raw)
		}
		f.Before = &before
	}
	return f, nil
}

// A cursor is the (created_at, id) of the last event of a page, opaque to
// clients: base64url of "<RFC 3339 time with microseconds>|<uuid>". A NULL
// created_at is the zero time there, as outbox reads it.
func encodeCursor(e Event) string {
	var at time.Time
	if e.CreatedAt != nil {
		at = *e.CreatedAt
	}
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + e.ID))
}

func decodeCursor(s string) (outbox.Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return outbox.Position{}, err
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok || !event.ValidID(id) {
		return outbox.Position{}, errors.New("malformed cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	return outbox.Position{CreatedAt: t, ID: id}, err
}

// listResponse is a page of events. The first page (no cursor) also says
// how many events match: Matched, at most countCap; MatchedCapped when there
// are more (the page shows "1,000+").
type listResponse struct {
	Events        []Event `json:"events"`
	NextCursor    *string `json:"next_cursor"`
	Matched       *int    `json:"matched,omitempty"`
	MatchedCapped bool    `json:"matched_capped,omitempty"`
}

// listEvents is useEvents and the page's search: newest first, by keyset on
// (created_at, id), which the index event_bus_created_at_idx serves without
// scanning skipped rows; a payload search is served by
// event_bus_payload_path_idx (migration 0016).
func (s *Server) listEvents(r *http.Request, c caller) (int, any, error) {
	f, err := parseList(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	var stored []outbox.StoredEvent
	var resp listResponse
	err = s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		var err error
		stored, err = outbox.ListEvents(r.Context(), tx, f)
		if err != nil || f.Before != nil {
			return err
		}
		n, capped, err := outbox.CountUpTo(r.Context(), tx, f, countCap)
		resp.Matched, resp.MatchedCapped = &n, capped
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	resp.Events = make([]Event, 0, limit)
	for _, e := range stored[:min(len(stored), limit)] {
		resp.Events = append(resp.Events, apiEvent(e))
	}
	if len(stored) > limit {
		next := encodeCursor(resp.Events[limit-1])
		resp.NextCursor = &next
	}
	return http.StatusOK, resp, nil
}

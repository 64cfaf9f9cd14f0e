package monitor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/event"
)

// Event is an event_bus row as the API shows it.
type Event struct {
	ID             string          `json:"id"`
	EventType      string          `json:"event_type"`
	AggregateType  string          `json:"aggregate_type"`
	AggregateID    string          `json:"aggregate_id"`
	OrganizationID *string         `json:"organization_id"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       json.RawMessage `json:"metadata"`
	Status         string          `json:"status"`
	CreatedAt      time.Time       `json:"created_at"`
	ProcessedAt    *time.Time      `json:"processed_at"`
	RetryCount     int             `json:"retry_count"`
	ErrorMessage   *string         `json:"error_message"`
}

// eventColumns are the columns scanEvent reads, in its order. NULLs of
// columns the seed left nullable read as their defaults.
const eventColumns = `id::text, event_type, aggregate_type, aggregate_id, organization_id::text,
	coalesce(payload, '{}')::text, coalesce(metadata, '{}')::text, coalesce(status, 'pending'),
	created_at, processed_at, coalesce(retry_count, 0), error_message`

func scanEvent(row pgx.Row) (Event, error) {
	var e Event
	var payload, metadata string
	err := row.Scan(&e.ID, &e.EventType, &e.AggregateType, &e.AggregateID, &e.OrganizationID,
		&payload, &metadata, &e.Status, &e.CreatedAt, &e.ProcessedAt, &e.RetryCount, &e.ErrorMessage)
	e.Payload, e.Metadata = json.RawMessage(payload), json.RawMessage(metadata)
	e.CreatedAt = e.CreatedAt.UTC()
	if e.ProcessedAt != nil {
		at := e.ProcessedAt.UTC()
		e.ProcessedAt = &at
	}
	return e, err
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
	var e Event
	err := s.inTx(ctx, c, func(tx pgx.Tx) error {
		var err error
		e, err = scanEvent(tx.QueryRow(ctx, `SELECT `+eventColumns+` FROM public.event_bus WHERE id = $1::uuid`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return e, badRequest(http.StatusNotFound, "event %s not found", id)
	}
	return e, err
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

// listQuery is a parsed GET /api/events request.
type listQuery struct {
	where []string
	args  []any
	limit int
}

func (q *listQuery) add(cond string, arg any) {
	q.args = append(q.args, arg)
	q.where = append(q.where, fmt.Sprintf(cond, len(q.args)))
}

// parseList validates the query string of GET /api/events.
func parseList(v map[string][]string) (listQuery, error) {
	q := listQuery{limit: defaultLimit}
	get := func(name string) string {
		if vs := v[name]; len(vs) > 0 {
			return strings.TrimSpace(vs[0])
		}
		return ""
	}
	bad := func(format string, args ...any) (listQuery, error) {
		return q, badRequest(http.StatusBadRequest, format, args...)
	}
	if st := get("status"); st != "" {
		if !event.ValidStatus(st) {
			return bad("status %q: want pending, processing, processed or failed", st)
		}
		q.add("status = $%d", st)
	}
	if et := get("event_type"); et != "" {
		q.add("event_type = $%d", et)
	}
	if at := get("aggregate_type"); at != "" {
		q.add("aggregate_type = $%d", at)
	}
	if id := get("aggregate_id"); id != "" {
		q.add("starts_with(aggregate_id, $%d)", id)
	}
	if org := get("organization_id"); org != "" {
		if !event.ValidID(org) {
			return bad("organization_id %q is not a UUID", org)
		}
		q.add("organization_id = $%d::uuid", org)
	}
	for _, p := range []struct{ name, cond string }{{"since", "created_at >= $%d"}, {"until", "created_at < $%d"}} {
		if raw := get(p.name); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				return bad("%s %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", p.name, raw)
			}
			q.add(p.cond, t)
		}
	}
	if raw := get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxLimit {
			return bad("limit %q: want a whole number from 1 to %d", raw, maxLimit)
		}
		q.limit = n
	}
	if raw := get("cursor"); raw != "" {
		at, id, err := decodeCursor(raw)
		if err != nil {
			return bad("cursor %q is not a cursor this API returned (next_cursor)", raw)
		}
		q.args = append(q.args, at, id)
		q.where = append(q.where, fmt.Sprintf("(created_at, id) < ($%d, $%d::uuid)", len(q.args)-1, len(q.args)))
	}
	return q, nil
}

// A cursor is the (created_at, id) of the last event of a page, opaque to
// clients: base64url of "<RFC 3339 time with microseconds>|<uuid>".
func encodeCursor(e Event) string {
	return base64.RawURLEncoding.EncodeToString([]byte(e.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + e.ID))
}

func decodeCursor(s string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", err
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok || !event.ValidID(id) {
		return time.Time{}, "", errors.New("malformed cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	return t, id, err
}

type listResponse struct {
	Events     []Event `json:"events"`
	NextCursor *string `json:"next_cursor"`
}

// listEvents is useEvents: newest first, by keyset on (created_at, id), which
// the index event_bus_created_at_idx serves without scanning skipped rows.
func (s *Server) listEvents(r *http.Request, c caller) (int, any, error) {
	q, err := parseList(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	sql := `SELECT ` + eventColumns + ` FROM public.event_bus`
	if len(q.where) > 0 {
		sql += ` WHERE ` + strings.Join(q.where, " AND ")
	}
	sql += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT %d`, q.limit+1)
	resp := listResponse{Events: make([]Event, 0, q.limit)}
	err = s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(), sql, q.args...)
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				return fmt.Errorf("read events: %w", err)
			}
			resp.Events = append(resp.Events, e)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, nil, err
	}
	if len(resp.Events) > q.limit {
		resp.Events = resp.Events[:q.limit]
		next := encodeCursor(resp.Events[q.limit-1])
		resp.NextCursor = &next
	}
	return http.StatusOK, resp, nil
}

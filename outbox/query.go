package outbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/event"
)

// Filter selects events for replay. Zero fields do not filter; several values
// of one field match any of them.
type Filter struct {
	Since          time.Time // created_at >= Since
	Until          time.Time // created_at < Until
	EventTypes     []string
	AggregateTypes []string
	Statuses       []string
	IDs            []string
}

// where renders the filter as a WHERE clause with numbered arguments.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if !f.Since.IsZero() {
		add("created_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("created_at < $%d", f.Until)
	}
	if len(f.EventTypes) > 0 {
		add("event_type = ANY($%d)", f.EventTypes)
	}
	if len(f.AggregateTypes) > 0 {
		add("aggregate_type = ANY($%d)", f.AggregateTypes)
	}
	if len(f.Statuses) > 0 {
		add("status = ANY($%d)", f.Statuses)
	}
	if len(f.IDs) > 0 {
		add("id = ANY($%d::uuid[])", f.IDs)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Scan calls fn for each event matching f, in created_at order, streaming
// rows from the server.
func (s *Store) Scan(ctx context.Context, f Filter, fn func(event.Event) error) (int, error) {
	where, args := f.where()
	rows, err := s.pool.Query(ctx, `SELECT `+selectColumns+` FROM public.event_bus`+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return 0, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return n, fmt.Errorf("read events: %w", err)
		}
		if err := fn(e); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read events: %w", err)
	}
	return n, nil
}

// Count returns how many events match f.
func (s *Store) Count(ctx context.Context, f Filter) (int, error) {
	where, args := f.where()
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM public.event_bus`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// Stats are the seed's useEventStats counts over a window, plus what an
// operator looks at next.
type Stats struct {
	Pending    int `json:"pending"`
	Processing int `json:"processing"`
	Processed  int `json:"processed"`
	Failed     int `json:"failed"`
	Total      int `json:"total"`
	// OldestPending is the created_at of the oldest pending row (any age); nil when none.
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
}

// Stats counts rows by status created within the last window.
func (s *Store) Stats(ctx context.Context, window time.Duration) (Stats, error) {
	return CountByStatus(ctx, s.pool, window)
}

// RowQuerier runs a query returning one row: a pool, a connection or a
// transaction (the monitor counts inside a transaction run as its caller).
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CountByStatus counts, through q, the rows by status created within the
// last window, and finds the oldest pending row.
func CountByStatus(ctx context.Context, q RowQuerier, window time.Duration) (Stats, error) {
	var st Stats
	err := q.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE status = 'pending'),
		count(*) FILTER (WHERE status = 'processing'),
		count(*) FILTER (WHERE status = 'processed'),
		count(*) FILTER (WHERE status = 'failed'),
		count(*),
		(SELECT min(created_at) FROM public.event_bus WHERE status = 'pending')
		FROM public.event_bus WHERE created_at >= now() - make_interval(secs => $1)`, window.Seconds()).
		Scan(&st.Pending, &st.Processing, &st.Processed, &st.Failed, &st.Total, &st.OldestPending)
	if err != nil {
		return st, fmt.Errorf("count events: %w", err)
	}
	return st, nil
}

// Failure is a failed event with its last error.
type Failure struct {
	ID           string    `json:"id"`
	EventType    string    `json:"event_type"`
	RetryCount   int       `json:"retry_count"`
	ErrorMessage string    `json:"error_message"`
	CreatedAt    time.Time `json:"created_at"`
}

// RecentFailures returns up to limit failed events, newest first.
func (s *Store) RecentFailures(ctx context.Context, limit int) ([]Failure, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text, event_type, coalesce(retry_count, 0), coalesce(error_message, ''), created_at
		FROM public.event_bus WHERE status = 'failed' ORDER BY created_at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read failed events: %w", err)
	}
	defer rows.Close()
	var out []Failure
	for rows.Next() {
		var f Failure
		if err := rows.Scan(&f.ID, &f.EventType, &f.RetryCount, &f.ErrorMessage, &f.CreatedAt); err != nil {
			return nil, fmt.Errorf("read failed events: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Publish calls publish_event and returns the new event's id.
func (s *Store) Publish(ctx context.Context, eventType, aggregateType, aggregateID string, payload, metadata []byte, organizationID string) (string, error) {
	var org any
	if organizationID != "" {
		org = organizationID
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT public.publish_event($1, $2, $3, $4::jsonb, $5::jsonb, $6::uuid)::text`,
		eventType, aggregateType, aggregateID, string(payload), string(metadata), org).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("publish_event: %w", err)
	}
	return id, nil
}

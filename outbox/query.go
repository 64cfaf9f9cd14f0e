package outbox

import (
	"context"
	"fmt"
	"strings"
	"time"

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

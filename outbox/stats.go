package outbox

import (
	"context"
	"fmt"
	"time"
)

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

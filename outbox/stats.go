package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
		count(*) FILTER (WHERE status = 'pending' OR status IS NULL),
		count(*) FILTER (WHERE status = 'processing'),
		count(*) FILTER (WHERE status = 'processed'),
		count(*) FILTER (WHERE status = 'failed'),
		count(*),
		least((SELECT min(created_at) FROM public.event_bus WHERE status = 'pending'),
		      (SELECT min(created_at) FROM public.event_bus WHERE status IS NULL))
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

// MinuteCounts are the events created in one minute, by status. Its JSON is
// the monitor's per_minute entry as it has always been: Minute is a whole
// minute in UTC, which encoding/json writes as RFC 3339 ("...T15:04:00Z").
type MinuteCounts struct {
	Minute     time.Time `json:"minute"`
	Pending    int       `json:"pending"`
	Processing int       `json:"processing"`
	Processed  int       `json:"processed"`
	Failed     int       `json:"failed"`
}

// perMinuteSQL counts events by minute of created_at and status over the
// last 60 minutes, the current one included, every minute present.
const perMinuteSQL = `SELECT m.minute,
	count(e.id) FILTER (WHERE e.status = 'pending'),
	count(e.id) FILTER (WHERE e.status = 'processing'),
	count(e.id) FILTER (WHERE e.status = 'processed'),
	count(e.id) FILTER (WHERE e.status = 'failed')
FROM generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()), interval '1 minute') AS m(minute)
LEFT JOIN public.event_bus e ON e.created_at >= m.minute AND e.created_at < m.minute + interval '1 minute'
GROUP BY m.minute ORDER BY m.minute`

// CountPerMinute counts, through q, the events created in each minute of the
// last hour by status: 60 entries, oldest first, the current minute last.
func CountPerMinute(ctx context.Context, q Querier) ([]MinuteCounts, error) {
	rows, err := q.Query(ctx, perMinuteSQL)
	if err != nil {
		return nil, fmt.Errorf("count events per minute: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (MinuteCounts, error) {
		var m MinuteCounts
		if err := r.Scan(&m.Minute, &m.Pending, &m.Processing, &m.Processed, &m.Failed); err != nil {
			return m, fmt.Errorf("count events per minute: %w", err)
		}
		m.Minute = m.Minute.UTC()
		return m, nil
	})
}

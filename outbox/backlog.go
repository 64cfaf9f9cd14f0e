package outbox

import (
	"context"
	"fmt"
)

// backlogSQL reads the event_bus backlog in one statement. Each subquery
// reads one of the partial indexes on created_at (status 'pending' or
// 'failed'), so the cost follows the number of such rows, not the table's
// size; min(created_at) reads one index entry. A created_at in the future
// counts as age 0.
const backlogSQL = `SELECT
  (SELECT count(*) FROM public.event_bus WHERE status = 'pending')::float8,
  greatest(coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM public.event_bus WHERE status = 'pending')), 0), 0)::float8,
  (SELECT count(*) FROM public.event_bus WHERE status = 'failed')::float8`

// Backlog is what is left to deliver, for the relay's gauges (hence float64).
type Backlog struct {
	Pending          float64 // rows pending
	OldestPendingAge float64 // seconds since the oldest pending row was created; 0 when none
	Failed           float64 // rows failed
}

// Backlog reads the backlog of event_bus.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	var b Backlog
	if err := s.pool.QueryRow(ctx, backlogSQL).Scan(&b.Pending, &b.OldestPendingAge, &b.Failed); err != nil {
		return b, fmt.Errorf("read the event_bus backlog: %w", err)
	}
	return b, nil
}

package outbox

import (
	"context"
	"fmt"
)

// backlogSQL reads the event_bus backlog in one statement. Each subquery
// reads one of the partial indexes on created_at (status 'pending', NULL —
// pending too, the seed's default — or 'failed'), so the cost follows the number of such rows, not the table's
// size; min(created_at) reads one index entry. A created_at in the future
// counts as age 0.
const backlogSQL = `SELECT
  ((SELECT count(*) FROM public.event_bus WHERE status = 'pending')
   + (SELECT count(*) FROM public.event_bus WHERE status IS NULL))::float8,
  greatest(coalesce(extract(epoch FROM now() - least(
    (SELECT min(created_at) FROM public.event_bus WHERE status = 'pending'),
    (SELECT min(created_at) FROM public.event_bus WHERE status IS NULL))), 0), 0)::float8,
  (SELECT count(*) FROM public.event_bus WHERE status = 'failed')::float8`

// Backlog is what waits in event_bus, for the relay's gauges (hence
// float64): rows pending and failed, of any age, and how long the oldest
// pending row has waited.
type Backlog struct {
	Pending          float64
	OldestPendingAge float64 // seconds; 0 when nothing is pending
	Failed           float64
}

// Backlog reads the backlog.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	var b Backlog
	if err := s.pool.QueryRow(ctx, backlogSQL).Scan(&b.Pending, &b.OldestPendingAge, &b.Failed); err != nil {
		return Backlog{}, fmt.Errorf("read the backlog: %w", err)
	}
	return b, nil
}

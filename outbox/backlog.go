package outbox

import (
	"context"
	"fmt"
)

// backlogSQL reads the event_bus backlog in one statement. Each subquery
// reads one of the partial indexes on created_at (status 'pending', NULL —
// pending too, the seed's default — or 'failed'), so the cost follows the number of such rows, not the table's
// size; min(created_at) reads one index entry. A created_at in the future
// counts as age 0. A delayed event waiting for its deliver_at is not late:
// the age leaves it out, and counts a due one from its deliver_at (read
// through the delayed events' index, see delayed.go), so that the
// oldest-pending alert means "the relay is behind", not "an event is
// scheduled for next week".
const backlogSQL = `SELECT
  ((SELECT count(*) FROM public.event_bus WHERE status = 'pending')
   + (SELECT count(*) FROM public.event_bus WHERE status IS NULL))::float8,
  greatest(coalesce(extract(epoch FROM now() - least(
    (SELECT min(created_at) FROM public.event_bus WHERE status = 'pending' AND NOT metadata ? 'deliver_at'),
    (SELECT min(created_at) FROM public.event_bus WHERE status IS NULL AND NOT metadata ? 'deliver_at'),
    (SELECT min(greatest(created_at, public.eventbus_deliver_at(metadata))) FROM public.event_bus
     WHERE ` + waitingSQL + ` AND coalesce(public.eventbus_deliver_at(metadata) <= now(), true)))), 0), 0)::float8,
  (SELECT count(*) FROM public.event_bus WHERE status = 'failed')::float8`

// Backlog is what waits in event_bus, for the relay's gauges (hence
// float64): rows pending and failed, of any age, and how long the oldest
// pending row has waited (a delayed event: since its deliver_at).
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

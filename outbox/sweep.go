package outbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/event"
)

const stuckSQL = `SELECT id::text FROM public.event_bus
WHERE (status = 'pending' AND created_at < $1)
   OR (status = 'failed' AND coalesce(retry_count, 0) < $2)
ORDER BY created_at, id
LIMIT $3
FOR UPDATE SKIP LOCKED`

// RedriveStuck hands back to the relay, through the replication stream, up
// to limit rows that should have been delivered by now: pending rows created
// before before, and failed rows that still have retries left (failed by an
// earlier, lower EVENTBUS_MAX_RETRIES, or set failed by hand). Failed rows
// become pending again. It returns how many rows it handed back.
func (s *Store) RedriveStuck(ctx context.Context, before time.Time, maxRetries, limit int) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, stuckSQL, before, maxRetries, limit)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		n = len(ids)
		if _, err := tx.Exec(ctx, `UPDATE public.event_bus SET status = 'pending'
			WHERE id = ANY($1::uuid[]) AND status = 'failed'`, ids); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, event.RedrivePrefix, strings.Join(ids, ","))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("redrive stuck events: %w", err)
	}
	return n, nil
}

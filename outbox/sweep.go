package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/internal/periodic"
)

const stuckSQL = `SELECT id::text FROM public.event_bus
WHERE ((status = 'pending' OR status IS NULL) AND created_at < $1 AND ` + dueBeforeSQL + `)
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
	n, _, err := s.handBack(ctx, stuckSQL, before, maxRetries, limit)
	if err != nil {
		return 0, fmt.Errorf("redrive stuck events: %w", err)
	}
	return n, nil
}

// handBack runs, in one transaction, the query selecting (and locking) the
// ids of rows to redrive, makes the failed ones among them pending and hands
// the ids to the relay through the stream. It returns how many, and the WAL
// position of the message (once the relay's confirmed position is past it,
// the relay has handled them).
func (s *Store) handBack(ctx context.Context, query string, args ...any) (int, uint64, error) {
	n := 0
	var lsn int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
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
		return tx.QueryRow(ctx, `SELECT (pg_logical_emit_message(true, $1, $2) - '0/0'::pg_lsn)::int8`,
			event.RedrivePrefix, strings.Join(ids, ",")).Scan(&lsn)
	})
	return n, uint64(lsn), err
}

// RedriveSweep is the safety net under the relay, one of its background
// services (relay.Service): every Interval it hands back, through the
// stream, pending rows that should have been delivered by now and failed
// rows with retries left (RedriveStuck). "By now" is measured against the
// confirmed position, not the clock: a pending row created more than After
// before ConfirmedTime (the commit time of the last transaction the relay
// confirmed) should have been delivered, while a backlog still being drained
// is left alone. After leaves room for long transactions, whose rows are
// created (now()) well before they commit; a row redriven by mistake is only
// published twice, and JetStream or the table status drops the copy.
type RedriveSweep struct {
	Store         *Store
	Interval      time.Duration
	After         time.Duration
	MaxRetries    int
	ConfirmedTime func() time.Time // zero until something is confirmed
	Log           *slog.Logger
}

// sweepLimit bounds the rows one sweep hands back.
const sweepLimit = 1000

// Name names the service in logs.
func (RedriveSweep) Name() string { return "redrive sweep" }

// Run sweeps until ctx ends, then returns nil. A failed sweep is logged and
// tried again at the next tick.
func (s RedriveSweep) Run(ctx context.Context) error {
	if s.Interval <= 0 {
		return fmt.Errorf("redrive sweep: interval must be positive, got %s", s.Interval)
	}
	periodic.Run(ctx, s.Interval, false, func(ctx context.Context) {
		at := s.ConfirmedTime()
		if at.IsZero() {
			return
		}
		n, err := s.Store.RedriveStuck(ctx, at.Add(-s.After), s.MaxRetries, sweepLimit)
		switch {
		case err != nil && ctx.Err() == nil:
			s.Log.Warn("redrive sweep failed", "err", err)
		case n > 0:
			s.Log.Warn("redrive sweep handed back events that should have been delivered by now", "events", n)
		}
	})
	return nil
}

const failedSQL = `SELECT id::text FROM public.event_bus
WHERE status = 'failed' AND ($1 = '' OR event_type = $1) AND ($2::timestamptz IS NULL OR created_at >= $2)
ORDER BY created_at, id
LIMIT $3
FOR UPDATE SKIP LOCKED`

// RedriveFailed hands failed events back to the relay as
// process_pending_events does: they become pending again (retry_count kept)
// and their ids go into the stream, sweepLimit per transaction. eventType
// and since (zero: any) narrow them. It returns how many.
func (s *Store) RedriveFailed(ctx context.Context, eventType string, since time.Time) (int, error) {
	var sinceArg any
	if !since.IsZero() {
		sinceArg = since
	}
	total := 0
	for {
		n, _, err := s.handBack(ctx, failedSQL, eventType, sinceArg, sweepLimit)
		if err != nil {
			return total, fmt.Errorf("redrive failed events: %w", err)
		}
		total += n
		if n < sweepLimit {
			return total, nil
		}
	}
}

const failedByIDSQL = `SELECT id::text FROM public.event_bus
WHERE id = ANY($1::uuid[]) AND status = 'failed'
ORDER BY created_at, id
FOR UPDATE SKIP LOCKED`

// RedriveIDs hands the failed events among ids back to the relay, as
// RedriveFailed does; the others (not failed, locked by another hand-back,
// or gone) are left alone. It returns how many were handed back.
func (s *Store) RedriveIDs(ctx context.Context, ids []string) (int, error) {
	n, _, err := s.handBack(ctx, failedByIDSQL, ids)
	if err != nil {
		return 0, fmt.Errorf("redrive events: %w", err)
	}
	return n, nil
}

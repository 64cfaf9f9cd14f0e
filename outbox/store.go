package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store reads and writes event_bus rows through a connection pool.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store using pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// selectColumns is the column list every Event scan expects, in scanEvent's order.
const selectColumns = `id::text, event_type, aggregate_type, aggregate_id,
	organization_id::text, payload::text, metadata::text, created_at`

func scanEvent(row pgx.Row) (Event, error) {
	var e Event
	var org *string
	var created *time.Time
	if err := row.Scan(&e.ID, &e.EventType, &e.AggregateType, &e.AggregateID, &org, &e.Payload, &e.Metadata, &created); err != nil {
		return e, err
	}
	if org != nil {
		e.OrganizationID = *org
	}
	if created != nil {
		e.CreatedAt = *created
	}
	return e, nil
}

const markProcessedSQL = `UPDATE public.event_bus
SET status = 'processed', processed_at = now()
WHERE id = ANY($1::uuid[]) AND status IS DISTINCT FROM 'processed'`

// unprocessedSQL returns the ids whose rows this statement's snapshot does
// not show as processed: not visible yet, or visible and not processed.
const unprocessedSQL = `SELECT x::text FROM unnest($1::uuid[]) AS x
WHERE NOT EXISTS (SELECT 1 FROM public.event_bus WHERE id = x AND status = 'processed')`

// visibilityWait bounds how long a status write waits for a row that the
// replication stream delivered but the database does not show yet.
var visibilityWait = 5 * time.Second

// ErrInvisible means rows delivered by the replication stream could not be
// found in the table.
var ErrInvisible = errors.New("events not found in event_bus")

// MarkProcessed marks the events with the given ids processed in one
// statement. Rows already processed keep their processed_at.
//
// A transaction reaches logical decoding as soon as its commit record is
// flushed, a moment before it becomes visible to other sessions. An UPDATE in
// that moment misses the row, silently. So when fewer rows are updated than
// asked, the ids not yet shown as processed are updated again, with a short
// backoff, until none is left; ids still missing after visibilityWait are
// reported (ErrInvisible): their rows were deleted, or something is badly wrong.
func (s *Store) MarkProcessed(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	deadline := time.Now().Add(visibilityWait)
	wait := time.Millisecond
	for {
		tag, err := s.pool.Exec(ctx, markProcessedSQL, ids)
		if err != nil {
			return fmt.Errorf("mark %d events processed: %w", len(ids), err)
		}
		if tag.RowsAffected() >= int64(len(ids)) {
			return nil
		}
		// Fewer rows: some were processed already (fine), or are not visible yet.
		rows, err := s.pool.Query(ctx, unprocessedSQL, ids)
		if err != nil {
			return fmt.Errorf("look up %d events: %w", len(ids), err)
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("look up events: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d of them after %s, e.g. %s", ErrInvisible, len(ids), visibilityWait, ids[0])
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

const recordFailureSQL = `UPDATE public.event_bus
SET retry_count = coalesce(retry_count, 0) + 1,
    error_message = $2,
    status = CASE WHEN coalesce(retry_count, 0) + 1 >= $3 THEN 'failed' ELSE status END
WHERE id = $1::uuid AND status IS DISTINCT FROM 'processed'
RETURNING status = 'failed'`

// RecordFailure counts one failed delivery attempt of event id with its error
// message. It reports whether the event is now failed (its retries are used
// up), in which case the relay moves on. An event already processed also
// reports true: there is nothing left to retry. Like MarkProcessed, it waits
// for a row that is committed but not visible yet.
func (s *Store) RecordFailure(ctx context.Context, id, message string, maxRetries int) (failed bool, err error) {
	deadline := time.Now().Add(visibilityWait)
	wait := time.Millisecond
	for {
		err := s.pool.QueryRow(ctx, recordFailureSQL, id, message, maxRetries).Scan(&failed)
		if err == nil {
			return failed, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, fmt.Errorf("record failure of event %s: %w", id, err)
		}
		var processed bool
		err = s.pool.QueryRow(ctx, `SELECT status = 'processed' FROM public.event_bus WHERE id = $1::uuid`, id).Scan(&processed)
		switch {
		case err == nil && processed:
			return true, nil
		case err == nil:
			continue // visible now: count the attempt
		case !errors.Is(err, pgx.ErrNoRows):
			return false, fmt.Errorf("look up event %s: %w", id, err)
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("%w: %s after %s", ErrInvisible, id, visibilityWait)
		}
		if err := sleep(ctx, wait); err != nil {
			return false, err
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// pendingByIDsSQL reads redriven rows. It takes any status but processed:
// process_pending_events set failed rows back to pending in a transaction the
// stream delivered, so it is committed, but this session may not see it yet
// (see MarkProcessed) and would still read 'failed'.
const pendingByIDsSQL = `SELECT ` + selectColumns + `
FROM public.event_bus
WHERE id = ANY($1::uuid[]) AND status IS DISTINCT FROM 'processed'
ORDER BY created_at, id`

// PendingByIDs returns the events among ids that are not processed yet, oldest first.
func (s *Store) PendingByIDs(ctx context.Context, ids []string) ([]Event, error) {
	rows, err := s.pool.Query(ctx, pendingByIDsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("load %d redriven events: %w", len(ids), err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) { return scanEvent(r) })
	if err != nil {
		return nil, fmt.Errorf("load %d redriven events: %w", len(ids), err)
	}
	return events, nil
}

// Settled returns which of ids are already processed or failed.
func (s *Store) Settled(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM public.event_bus
		WHERE id = ANY($1::uuid[]) AND status IN ('processed', 'failed')`, ids)
	if err != nil {
		return nil, fmt.Errorf("read statuses of %d events: %w", len(ids), err)
	}
	settled, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read statuses of %d events: %w", len(ids), err)
	}
	m := make(map[string]bool, len(settled))
	for _, id := range settled {
		m[id] = true
	}
	return m, nil
}

const pendingSQL = `SELECT ` + selectColumns + `
FROM public.event_bus
WHERE status = 'pending'
ORDER BY created_at, id`

// ScanPending calls fn for every pending event visible to tx, oldest first,
// streaming rows so memory does not grow with the backlog. tx is usually a
// REPEATABLE READ transaction that imported a replication slot's snapshot.
func ScanPending(ctx context.Context, tx pgx.Tx, fn func(Event) error) (int, error) {
	rows, err := tx.Query(ctx, pendingSQL)
	if err != nil {
		return 0, fmt.Errorf("read pending events: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return n, fmt.Errorf("read pending events: %w", err)
		}
		if err := fn(e); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read pending events: %w", err)
	}
	return n, nil
}

// BackfillDone reports whether the backfill of slot has completed. A slot with
// no record (created before this relay version, or by hand) counts as not done,
// so its pending rows are backfilled: re-publishing is safe, skipping is not.
func (s *Store) BackfillDone(ctx context.Context, slot string) (bool, error) {
	var done bool
	err := s.pool.QueryRow(ctx,
		`SELECT backfilled_at IS NOT NULL FROM public.eventbus_slot_state WHERE slot_name = $1`, slot).Scan(&done)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read backfill state of slot %q: %w", slot, err)
	}
	return done, nil
}

// SetBackfillDone records whether the backfill of slot has completed.
func (s *Store) SetBackfillDone(ctx context.Context, slot string, done bool) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO public.eventbus_slot_state (slot_name, backfilled_at)
VALUES ($1, CASE WHEN $2 THEN now() END)
ON CONFLICT (slot_name) DO UPDATE SET backfilled_at = excluded.backfilled_at`, slot, done)
	if err != nil {
		return fmt.Errorf("record backfill state of slot %q: %w", slot, err)
	}
	return nil
}

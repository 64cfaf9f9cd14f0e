package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventbus/eventbus/event"
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

// scanEvent reads the selectColumns of row, then any columns after them
// into extra.
func scanEvent(row pgx.Row, extra ...any) (event.Event, error) {
	var e event.Event
	var org *string
	var created *time.Time
	dest := append([]any{&e.ID, &e.EventType, &e.AggregateType, &e.AggregateID, &org, &e.Payload, &e.Metadata, &created}, extra...)
	if err := row.Scan(dest...); err != nil {
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

// unmarkedSQL classifies the ids whose rows this statement's snapshot does
// not show as processed: visible (not processed yet), or not visible, in
// which case their transaction is either still committing (pg_xact_status
// says "in progress" until the commit is visible to everyone) or long done,
// meaning the row was deleted. A full xid of 0 means unknown: the row was
// read from the table, so it was visible.
const unmarkedSQL = `SELECT m.n::int, e.id IS NOT NULL,
  coalesce(pg_xact_status(nullif(m.fxid, 0)::text::xid8) = 'in progress', false)
FROM unnest($1::uuid[], $2::int8[]) WITH ORDINALITY AS m(id, fxid, n)
LEFT JOIN public.event_bus e ON e.id = m.id
WHERE e.status IS DISTINCT FROM 'processed'`

// fullXid returns the 64-bit transaction id with the low 32 bits xid that is
// nearest to xmax, the current snapshot's xmax. The replication stream gives
// 32-bit xids and pg_xact_status wants them with their epoch; a transaction
// the stream just delivered is a few xids from xmax (above it while it is
// still committing), far closer than 2^31.
func fullXid(xmax uint64, xid uint32) uint64 {
	if xid == 0 {
		return 0
	}
	behind := uint32(xmax) - xid // modulo 2^32
	if behind < 1<<31 {
		return xmax - uint64(behind)
	}
	return xmax + uint64(-behind) // ahead of xmax
}

// visibilityWait bounds how long a write waits for rows that should be
// there and are not marked: a rejected event's row not visible yet (see
// RecordFailure), or visible rows that an UPDATE keeps missing (a row level
// security policy that hides them from the relay's role, say).
var visibilityWait = 5 * time.Second

// ErrInvisible means rows delivered by the replication stream could not be
// found in the table: they were deleted before they were marked.
var ErrInvisible = errors.New("events not found in event_bus")

// Mark names a row to mark processed: its id and the id of the transaction
// that inserted it, as the replication stream reported it (0 when unknown).
type Mark struct {
	ID  string
	Xid uint32
}

// MarkProcessed marks the given events processed, in one statement when
// nothing gets in the way. Rows already processed keep their processed_at.
//
// A transaction reaches logical decoding as soon as its commit record is
// flushed, a moment before it becomes visible to other sessions (longer with
// synchronous replication, which makes the commit wait for a standby). An
// UPDATE in that moment misses the row, silently. So when fewer rows are
// updated than asked, the rest are looked up: rows whose transaction is still
// committing are waited for, with a short backoff, as long as it takes;
// rows now visible are updated again at once; rows that are neither were
// deleted: the others are marked and ErrInvisible reports how many.
func (s *Store) MarkProcessed(ctx context.Context, marks []Mark) error {
	if len(marks) == 0 {
		return nil
	}
	ids := make([]string, len(marks))
	for i, m := range marks {
		ids[i] = m.ID
	}
	var (
		xids []int64 // full xids, read only when some rows are not marked at once
		// over[i]: ids[i] was invisible to a lookup although its transaction
		// was found over (by a check that runs after the lookup's snapshot
		// was taken, so it may have ended in between). The next lookup's
		// snapshot is taken after that check: invisible there, it is gone.
		over  []bool
		gone  []string
		stuck time.Time // since when visible rows keep being missed
		wait  = time.Millisecond
	)
	for {
		tag, err := s.pool.Exec(ctx, markProcessedSQL, ids)
		if err != nil {
			return fmt.Errorf("mark %d events processed: %w", len(ids), err)
		}
		if tag.RowsAffected() >= int64(len(ids)) {
			break
		}
		// Fewer rows: some were processed already (fine), are not visible
		// yet, or are gone.
		if xids == nil {
			if xids, err = s.fullXids(ctx, marks); err != nil {
				return err
			}
			over = make([]bool, len(ids))
		}
		rows, err := s.pool.Query(ctx, unmarkedSQL, ids, xids)
		if err != nil {
			return fmt.Errorf("look up %d events: %w", len(ids), err)
		}
		var (
			n                   int
			visible, inProgress bool
			retryIDs            []string
			retryXids           []int64
			retryOver           []bool
			committing, recheck bool
		)
		_, err = pgx.ForEachRow(rows, []any{&n, &visible, &inProgress}, func() error {
			i := n - 1 // ordinality counts from 1
			nowOver := false
			switch {
			case visible:
			case inProgress:
				committing = true
			case over[i]:
				gone = append(gone, ids[i])
				return nil
			default:
				nowOver, recheck = true, true
			}
			retryIDs = append(retryIDs, ids[i])
			retryXids = append(retryXids, xids[i])
			retryOver = append(retryOver, nowOver)
			return nil
		})
		if err != nil {
			return fmt.Errorf("look up events: %w", err)
		}
		ids, xids, over = retryIDs, retryXids, retryOver
		if len(ids) == 0 {
			break
		}
		if !committing && !recheck && tag.RowsAffected() == 0 {
			// Visible, not processed, and the UPDATE matched none of them.
			if stuck.IsZero() {
				stuck = time.Now()
			} else if time.Since(stuck) > visibilityWait {
				return fmt.Errorf("mark %d events processed: the UPDATE does not match rows it can read, e.g. %s (row level security?)", len(ids), ids[0])
			}
		} else {
			stuck = time.Time{}
		}
		if committing || !stuck.IsZero() {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
			wait = min(2*wait, 100*time.Millisecond)
		}
	}
	if len(gone) > 0 {
		return fmt.Errorf("%w: %d of them, e.g. %s", ErrInvisible, len(gone), gone[0])
	}
	return nil
}

// fullXids returns the full transaction ids of marks, in order.
func (s *Store) fullXids(ctx context.Context, marks []Mark) ([]int64, error) {
	var xmax int64
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8`).Scan(&xmax); err != nil {
		return nil, fmt.Errorf("read the current transaction id: %w", err)
	}
	xids := make([]int64, len(marks))
	for i, m := range marks {
		xids[i] = int64(fullXid(uint64(xmax), m.Xid))
	}
	return xids, nil
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

// failureLookupSQL tells, for a row RecordFailure's UPDATE missed, whether
// it is visible now (and processed), and whether the transaction that
// inserted it (full xid $2, 0 when unknown) is still in progress.
const failureLookupSQL = `SELECT e.id IS NOT NULL, coalesce(e.status = 'processed', false),
  coalesce(pg_xact_status(nullif($2::int8, 0)::text::xid8) = 'in progress', false)
FROM (SELECT $1::uuid AS id) want LEFT JOIN public.event_bus e USING (id)`

// RecordFailure counts one failed delivery attempt of event id with its error
// message. It reports whether the event is now failed (its retries are used
// up), in which case the relay moves on. An event already processed also
// reports true: there is nothing left to retry.
//
// Like MarkProcessed, it waits for a row that is committed but not visible
// yet: as long as xid, the id of the transaction that inserted the row (0
// when unknown: backfilled and redriven rows, read from the table), is still
// in progress, and then for a second lookup, whose snapshot follows the check
// that found the transaction over. A row missing then was deleted
// (ErrInvisible). Without an xid it waits at most visibilityWait.
func (s *Store) RecordFailure(ctx context.Context, id string, xid uint32, message string, maxRetries int) (failed bool, err error) {
	deadline := time.Now().Add(visibilityWait)
	wait := time.Millisecond
	var fxid int64
	if xid != 0 {
		full, err := s.fullXids(ctx, []Mark{{ID: id, Xid: xid}})
		if err != nil {
			return false, err
		}
		fxid = full[0]
	}
	over := false // the inserting transaction was found over by a lookup
	for {
		err := s.pool.QueryRow(ctx, recordFailureSQL, id, message, maxRetries).Scan(&failed)
		if err == nil {
			return failed, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, fmt.Errorf("record failure of event %s: %w", id, err)
		}
		var visible, processed, inProgress bool
		if err := s.pool.QueryRow(ctx, failureLookupSQL, id, fxid).Scan(&visible, &processed, &inProgress); err != nil {
			return false, fmt.Errorf("look up event %s: %w", id, err)
		}
		switch {
		case processed:
			return true, nil
		case visible:
			continue // visible now: count the attempt
		case inProgress:
			deadline = time.Now().Add(visibilityWait)
		case fxid != 0 && over:
			return false, fmt.Errorf("%w: %s", ErrInvisible, id)
		case fxid != 0:
			over = true
			continue // once more, in a snapshot taken after the check
		case time.Now().After(deadline):
			return false, fmt.Errorf("%w: %s after %s", ErrInvisible, id, visibilityWait)
		}
		if err := sleep(ctx, wait); err != nil {
			return false, err
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// FailNow marks event id failed at once, with message as its error_message
// and the attempt counted: a rejection that no retry can cure (a payload its
// type's schema refuses). It waits for a row not visible yet, and reports
// what RecordFailure does (always failed, or already processed).
func (s *Store) FailNow(ctx context.Context, id string, xid uint32, message string) (failed bool, err error) {
	// With one retry allowed, the first counted attempt is the last.
	return s.RecordFailure(ctx, id, xid, message, 1)
}

// pendingByIDsSQL reads redriven rows. It takes any status but processed:
// process_pending_events set failed rows back to pending in a transaction the
// stream delivered, so it is committed, but this session may not see it yet
// (see MarkProcessed) and would still read 'failed'.
const pendingByIDsSQL = `SELECT ` + selectColumns + `
FROM public.event_bus
WHERE id = ANY($1::uuid[]) AND status IS DISTINCT FROM 'processed' AND ` + dueNowSQL + `
ORDER BY created_at, id`

// RetryCount returns an event's retry_count.
func (s *Store) RetryCount(ctx context.Context, id string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(retry_count, 0) FROM public.event_bus WHERE id = $1::uuid`, id).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read retry_count of event %s: %w", id, err)
	}
	return n, nil
}

// PendingByIDs returns the events among ids that are not processed yet and
// are due (a delayed event, only from its deliver_at on), oldest first.
func (s *Store) PendingByIDs(ctx context.Context, ids []string) ([]event.Event, error) {
	rows, err := s.pool.Query(ctx, pendingByIDsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("load %d redriven events: %w", len(ids), err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (event.Event, error) { return scanEvent(r) })
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
WHERE (status = 'pending' OR status IS NULL) AND ` + dueNowSQL + `
ORDER BY created_at, id`

// ScanPending calls fn for every pending event visible to tx that is due
// (delayed events wait for outbox.DelayedRelease), oldest first,
// streaming rows so memory does not grow with the backlog. tx is usually a
// REPEATABLE READ transaction that imported a replication slot's snapshot.
func ScanPending(ctx context.Context, tx pgx.Tx, fn func(event.Event) error) (int, error) {
	return streamEvents(ctx, tx, "read pending events", pendingSQL, nil, fn)
}

// SlotState is what the relay records about a replication slot.
type SlotState struct {
	// BackfillDone is set once the backfill of the slot has completed. A slot
	// with no record (created before this relay version, or by hand) counts
	// as not done, so its pending rows are backfilled: re-publishing is safe,
	// skipping is not.
	BackfillDone bool
	// Timeline is the server's WAL timeline when it was last recorded
	// (SetTimeline); 0 when never recorded.
	Timeline int32
}

// SlotState reads what is recorded about slot.
func (s *Store) SlotState(ctx context.Context, slot string) (SlotState, error) {
	var st SlotState
	err := s.pool.QueryRow(ctx,
		`SELECT backfilled_at IS NOT NULL, coalesce(timeline, 0) FROM public.eventbus_slot_state WHERE slot_name = $1`, slot).
		Scan(&st.BackfillDone, &st.Timeline)
	if errors.Is(err, pgx.ErrNoRows) {
		return SlotState{}, nil
	}
	if err != nil {
		return SlotState{}, fmt.Errorf("read backfill state of slot %q: %w", slot, err)
	}
	return st, nil
}

// SetTimeline records the server's WAL timeline with the state of slot.
func (s *Store) SetTimeline(ctx context.Context, slot string, timeline int32) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO public.eventbus_slot_state (slot_name, timeline) VALUES ($1, $2)
ON CONFLICT (slot_name) DO UPDATE SET timeline = excluded.timeline`, slot, timeline)
	if err != nil {
		return fmt.Errorf("record the timeline of slot %q: %w", slot, err)
	}
	return nil
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

package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/internal/backoff"
)

// Delayed events (metadata.deliver_at in the future) wait in the table. The
// relay skips them when their insert arrives from the stream and the slot
// moves on: the pending row is the event's durable record. Migration 0015's
// partial index event_bus_deliver_at_idx holds exactly the pending rows whose
// metadata has a deliver_at key, keyed by public.eventbus_deliver_at, so
// DelayedRelease finds the earliest and the due ones without scanning, and an
// ordinary insert pays only the predicate (one jsonb key lookup). Every read
// that hands pending rows to the relay (the backfill, the redrive by ids, the
// redrive sweep, process_pending_events) leaves not-yet-due rows alone.

// dueNowSQL is true for a row that is not a delayed event still waiting: no
// deliver_at, one that is not a time (the relay fails the event), or one
// that has come.
const dueNowSQL = `NOT (metadata ? 'deliver_at' AND coalesce(public.eventbus_deliver_at(metadata) > now(), false))`

// dueBeforeSQL is true for a row that is not a delayed event, or one due
// before $1: the redrive sweep ages a delayed event from its deliver_at.
const dueBeforeSQL = `NOT (metadata ? 'deliver_at' AND coalesce(public.eventbus_deliver_at(metadata) >= $1, false))`

// waitingSQL selects the delayed events waiting, through the partial index.
const waitingSQL = `metadata ? 'deliver_at' AND (status = 'pending' OR status IS NULL)`

// nextDelayedSQL answers how long until the earliest waiting delayed event
// is due, by the database's clock (NULL: none waits).
const nextDelayedSQL = `SELECT extract(epoch FROM min(public.eventbus_deliver_at(metadata)) - now())::float8
FROM public.event_bus WHERE ` + waitingSQL

const dueDelayedSQL = `SELECT id::text FROM public.event_bus
WHERE ` + waitingSQL + ` AND public.eventbus_deliver_at(metadata) <= now()
ORDER BY created_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED`

// NextDelayed returns how long until the earliest waiting delayed event is
// due (zero or less: one is due now); ok is false when none waits.
func (s *Store) NextDelayed(ctx context.Context) (in time.Duration, ok bool, err error) {
	var secs *float64
	if err := s.pool.QueryRow(ctx, nextDelayedSQL).Scan(&secs); err != nil {
		return 0, false, fmt.Errorf("look up delayed events: %w", err)
	}
	if secs == nil {
		return 0, false, nil
	}
	return time.Duration(*secs * float64(time.Second)), true, nil
}

// ReleaseDue hands up to limit due delayed events back to the relay through
// the replication stream, as the redrive does, and returns how many, and the
// WAL position of the message: once the relay has confirmed past it, they
// are published and marked.
func (s *Store) ReleaseDue(ctx context.Context, limit int) (n int, lsn uint64, err error) {
	n, lsn, err = s.handBack(ctx, dueDelayedSQL, limit)
	if err != nil {
		return 0, 0, fmt.Errorf("release due delayed events: %w", err)
	}
	return n, lsn, nil
}

// DelayedRelease publishes delayed events when they are due, one of the
// relay's background services (relay.Service), so only the active relay
// runs it. It sleeps until the earliest deliver_at (by the database's
// clock), at most Poll, so an event inserted meanwhile is seen within Poll;
// then it hands the due events to the relay through the stream (ReleaseDue)
// and waits until the relay has confirmed past them (Confirmed) before it
// looks again, so a row is not handed back twice while it is in flight.
type DelayedRelease struct {
	Store     *Store
	Poll      time.Duration
	Confirmed func() uint64 // the relay's confirmed WAL position
	Log       *slog.Logger
}

// releaseWait bounds the wait for the relay to confirm a release; past it
// the rows still pending are released again (published twice at worst,
// under the same Nats-Msg-Id).
const releaseWait = 30 * time.Second

// Name names the service in logs.
func (DelayedRelease) Name() string { return "delayed events" }

// Run releases due delayed events until ctx ends, then returns nil.
func (s DelayedRelease) Run(ctx context.Context) error {
	if s.Poll <= 0 {
		return fmt.Errorf("delayed events: poll interval must be positive, got %s", s.Poll)
	}
	retry := backoff.New(100*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		sleep, err := s.step(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("releasing delayed events failed", "err", err)
			}
			sleep = retry.Next()
		} else {
			retry.Reset()
		}
		if sleep > 0 && !backoff.Sleep(ctx, sleep) {
			break
		}
	}
	return nil
}

// step releases what is due and returns how long to sleep.
func (s DelayedRelease) step(ctx context.Context) (time.Duration, error) {
	in, ok, err := s.Store.NextDelayed(ctx)
	if err != nil {
		return 0, err
	}
	if !ok {
		return s.Poll, nil
	}
	if in > 0 {
		return min(in, s.Poll), nil
	}
	n, lsn, err := s.Store.ReleaseDue(ctx, sweepLimit)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		// Due rows locked by a redrive under way: theirs to hand back.
		return s.Poll, nil
	}
	s.Log.Debug("released due delayed events", "events", n)
	return 0, s.awaitConfirmed(ctx, lsn)
}

// awaitConfirmed waits until the relay's confirmed position is past lsn,
// at most releaseWait.
func (s DelayedRelease) awaitConfirmed(ctx context.Context, lsn uint64) error {
	deadline := time.Now().Add(releaseWait)
	for s.Confirmed() <= lsn {
		if time.Now().After(deadline) {
			s.Log.Warn("released delayed events not confirmed yet; releasing what is still pending again", "after", releaseWait.String())
			return nil
		}
		if !backoff.Sleep(ctx, 5*time.Millisecond) {
			return nil // stopping
		}
	}
	return nil
}

// Delayed is a delayed event waiting, for the monitor.
type Delayed struct {
	ID             string    `json:"id"`
	EventType      string    `json:"event_type"`
	AggregateType  string    `json:"aggregate_type"`
	AggregateID    string    `json:"aggregate_id"`
	OrganizationID *string   `json:"organization_id"`
	DeliverAt      time.Time `json:"deliver_at"`
	CreatedAt      time.Time `json:"created_at"`
}

const listDelayedSQL = `SELECT id::text, event_type, aggregate_type, aggregate_id, organization_id::text,
  public.eventbus_deliver_at(metadata), coalesce(created_at, '-infinity')
FROM public.event_bus
WHERE ` + waitingSQL + ` AND public.eventbus_deliver_at(metadata) IS NOT NULL
ORDER BY public.eventbus_deliver_at(metadata), id
LIMIT $1`

const countDelayedSQL = `SELECT count(*) FROM public.event_bus
WHERE ` + waitingSQL + ` AND public.eventbus_deliver_at(metadata) IS NOT NULL`

// ListDelayed returns up to limit delayed events waiting through q (the
// monitor's transaction, as its caller: row level security applies),
// soonest first, and how many wait in all.
func ListDelayed(ctx context.Context, q Querier, limit int) ([]Delayed, int, error) {
	var total int
	if err := q.QueryRow(ctx, countDelayedSQL).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count delayed events: %w", err)
	}
	rows, err := q.Query(ctx, listDelayedSQL, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list delayed events: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delayed, error) {
		var d Delayed
		err := r.Scan(&d.ID, &d.EventType, &d.AggregateType, &d.AggregateID, &d.OrganizationID, &d.DeliverAt, &d.CreatedAt)
		return d, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list delayed events: %w", err)
	}
	return list, total, nil
}

package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/internal/periodic"
)

// ErrPruneStatus means Prune was asked to delete rows of a status it never
// deletes: only processed and failed rows are history; a pending or
// processing row is an event still on its way.
var ErrPruneStatus = errors.New("only processed and failed events can be pruned")

// DefaultPruneBatch is how many rows one DELETE of Prune removes at most.
const DefaultPruneBatch = 10000

// pruneCutoffSQL fixes the cutoff once, on the database's clock, so a prune
// ends even while rows keep aging past a moving cutoff.
const pruneCutoffSQL = `SELECT now() - make_interval(secs => $1)`

// pruneBatchSQL deletes one batch, oldest first. SKIP LOCKED passes over rows
// another session holds (process_pending_events handing a failed row back,
// the relay writing a status), and the outer status test re-checks each row
// as it is deleted, so a row that became pending meanwhile is kept.
const pruneBatchSQL = `DELETE FROM public.event_bus
WHERE id IN (
	SELECT id FROM public.event_bus
	WHERE status = ANY($1) AND created_at < $2
	ORDER BY created_at
	LIMIT $3
	FOR UPDATE SKIP LOCKED)
AND status = ANY($1)`

const prunableSQL = `SELECT count(*) FROM public.event_bus
WHERE status = ANY($1) AND created_at < now() - make_interval(secs => $2)`

// checkPrune validates the arguments of Prune and Prunable.
func checkPrune(olderThan time.Duration, statuses []string) error {
	if olderThan < 0 {
		return fmt.Errorf("prune: negative age %s", olderThan)
	}
	if len(statuses) == 0 {
		return fmt.Errorf("prune: %w: no status given", ErrPruneStatus)
	}
	for _, s := range statuses {
		if s != event.StatusProcessed && s != event.StatusFailed {
			return fmt.Errorf("prune: %w, not %q", ErrPruneStatus, s)
		}
	}
	return nil
}

// Prune deletes the events with one of statuses (processed, failed) created
// more than olderThan ago, at most batch rows per DELETE, each DELETE its own
// transaction so locks, WAL and replication lag stay small whatever the
// backlog. Rows with a NULL created_at are kept. It returns how many rows were
// deleted, also when it stops early on an error or the end of ctx.
//
// Deleting rows never reaches the relay: the publication carries inserts only.
func (s *Store) Prune(ctx context.Context, olderThan time.Duration, statuses []string, batch int) (int64, error) {
	if err := checkPrune(olderThan, statuses); err != nil {
		return 0, err
	}
	if batch < 1 {
		return 0, fmt.Errorf("prune: batch must be at least 1, got %d", batch)
	}
	var cutoff time.Time
	if err := s.pool.QueryRow(ctx, pruneCutoffSQL, olderThan.Seconds()).Scan(&cutoff); err != nil {
		return 0, fmt.Errorf("prune: read the database clock: %w", err)
	}
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, pruneBatchSQL, statuses, cutoff, batch)
		if err != nil {
			return total, fmt.Errorf("prune events created before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
		}
		total += tag.RowsAffected()
		// A short batch means nothing is left but rows other sessions hold;
		// the next prune gets those.
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// Prunable counts the events Prune would delete now, for a dry run.
func (s *Store) Prunable(ctx context.Context, olderThan time.Duration, statuses []string) (int64, error) {
	if err := checkPrune(olderThan, statuses); err != nil {
		return 0, err
	}
	var n int64
	if err := s.pool.QueryRow(ctx, prunableSQL, statuses, olderThan.Seconds()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count prunable events: %w", err)
	}
	return n, nil
}

// Retention prunes processed events older than Age every Interval, for the
// relay's EVENTBUS_RETENTION.
type Retention struct {
	Store    *Store
	Age      time.Duration // rows older than this are deleted; must be positive
	Interval time.Duration // between prunes; default 1h
	Batch    int           // rows per DELETE; default DefaultPruneBatch
	Log      *slog.Logger
}

// Run prunes at once, then every Interval, until ctx ends; then it returns
// nil. A failed prune is logged and tried again at the next tick: retention
// is housekeeping and never stops the relay.
func (r Retention) Run(ctx context.Context) error {
	if r.Age <= 0 {
		return fmt.Errorf("retention: age must be positive, got %s", r.Age)
	}
	interval := r.Interval
	if interval <= 0 {
		interval = time.Hour
	}
	batch := r.Batch
	if batch <= 0 {
		batch = DefaultPruneBatch
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	periodic.Run(ctx, interval, true, func(ctx context.Context) {
		started := time.Now()
		n, err := r.Store.Prune(ctx, r.Age, []string{event.StatusProcessed}, batch)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Warn("retention: prune failed; retrying at the next interval", "err", err, "deleted", n, "retry_in", interval.String())
		case n > 0:
			log.Info("retention: pruned processed events", "deleted", n, "older_than", r.Age.String(),
				"took", time.Since(started).Round(time.Millisecond).String())
		}
	})
	return nil
}

// Name names Retention in the relay's logs.
func (Retention) Name() string { return "retention" }

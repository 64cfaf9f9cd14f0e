package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventbus/eventbus/internal/periodic"
)

// pruneDeliveredSQL deletes one batch of deliveries delivered before $1.
// Failed deliveries are kept: they are the dead letters an operator may
// still redeliver (remove the endpoint to drop them); pending ones are on
// their way.
const pruneDeliveredSQL = `DELETE FROM public.event_webhook_deliveries
WHERE id IN (
	SELECT id FROM public.event_webhook_deliveries
	WHERE status = 'delivered' AND delivered_at < $1
	LIMIT $2
	FOR UPDATE SKIP LOCKED)
AND status = 'delivered'`

// PruneDelivered deletes the deliveries delivered more than olderThan ago, at
// most batch rows per DELETE, each its own transaction. It returns how many,
// also when it stops early.
func (s *Store) PruneDelivered(ctx context.Context, olderThan time.Duration, batch int) (int64, error) {
	if olderThan <= 0 || batch < 1 {
		return 0, fmt.Errorf("prune deliveries: age must be positive and batch at least 1, got %s and %d", olderThan, batch)
	}
	var cutoff time.Time
	if err := s.db.QueryRow(ctx, `SELECT now() - make_interval(secs => $1)`, olderThan.Seconds()).Scan(&cutoff); err != nil {
		return 0, fmt.Errorf("prune deliveries: read the database clock: %w", err)
	}
	var total int64
	for {
		tag, err := s.db.Exec(ctx, pruneDeliveredSQL, cutoff, batch)
		if err != nil {
			return total, fmt.Errorf("prune deliveries delivered before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// Retention prunes delivered deliveries older than Age every Interval: the
// relay's EVENTBUS_RETENTION for event_webhook_deliveries, which otherwise
// grows by a row per endpoint and event for ever. A relay.Service: it runs on
// the active relay only.
type Retention struct {
	Store    *Store
	Age      time.Duration // must be positive
	Interval time.Duration // default 1h
	Batch    int           // rows per DELETE; default 10000
	Log      *slog.Logger
}

// Name names Retention in the relay's logs.
func (Retention) Name() string { return "webhook delivery retention" }

// Run prunes at once, then every Interval, until ctx ends; then it returns
// nil. A failed prune is logged and tried again at the next tick.
func (r Retention) Run(ctx context.Context) error {
	if r.Age <= 0 {
		return fmt.Errorf("webhook delivery retention: age must be positive, got %s", r.Age)
	}
	interval, batch, log := r.Interval, r.Batch, r.Log
	if interval <= 0 {
		interval = time.Hour
	}
	if batch <= 0 {
		batch = 10000
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	periodic.Run(ctx, interval, true, func(ctx context.Context) {
		n, err := r.Store.PruneDelivered(ctx, r.Age, batch)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Warn("retention: prune of webhook deliveries failed; retrying at the next interval", "err", err, "deleted", n, "retry_in", interval.String())
		case n > 0:
			log.Info("retention: pruned delivered webhook deliveries", "deleted", n, "older_than", r.Age.String())
		}
	})
	return nil
}

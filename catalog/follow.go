package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventbus/eventbus/internal/backoff"
)

// Channel is the NOTIFY channel of changes to public.event_types (the
// trigger of migration 0014).
const Channel = "eventbus_event_types"

// ReloadInterval is how often the Follower reloads the catalog when no
// notification came: the bound on how late a change is seen when one was
// lost.
const ReloadInterval = 30 * time.Second

// Load replaces cat's content with the catalog as q reads it now.
func Load(ctx context.Context, q Querier, cat *Catalog, log *slog.Logger) error {
	versions, err := List(ctx, q)
	if err != nil {
		return err
	}
	for _, err := range cat.Set(versions) {
		log.Warn("event types", "err", err)
	}
	return nil
}

// Follower keeps a Catalog in step with public.event_types: a relay.Service
// (see the package doc for the mechanism).
type Follower struct {
	Pool    *pgxpool.Pool
	Catalog *Catalog
	// Interval is the periodic reload (0: ReloadInterval).
	Interval time.Duration
	Log      *slog.Logger
}

// Name names the service in logs.
func (Follower) Name() string { return "event types" }

// Run listens and reloads until ctx ends, then returns nil. A lost
// connection is opened again after a backoff.
func (f Follower) Run(ctx context.Context) error {
	if f.Interval <= 0 {
		f.Interval = ReloadInterval
	}
	wait := backoff.New(time.Second, 30*time.Second)
	for ctx.Err() == nil {
		err := f.follow(ctx, wait)
		if ctx.Err() != nil {
			break
		}
		f.Log.Warn("event types: not following changes; retrying", "err", err)
		if !backoff.Sleep(ctx, wait.Next()) {
			break
		}
	}
	return nil
}

// follow holds one listening connection: it reloads after LISTEN (what
// changed while nobody listened), on every notification and every interval.
func (f Follower) follow(ctx context.Context, wait *backoff.Backoff) error {
	pc, err := f.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection listens for as long as it lives: it never goes back
	// to the pool, where another user would get its notifications.
	conn := pc.Hijack()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen %s: %w", Channel, err)
	}
	for {
		if err := Load(ctx, conn, f.Catalog, f.Log); err != nil {
			return err
		}
		wait.Reset()
		waitCtx, cancel := context.WithTimeout(ctx, f.Interval)
		_, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// The periodic reload.
		case err != nil:
			return fmt.Errorf("wait for %s: %w", Channel, err)
		default:
			// Several changes in a row (a migration, a script) are one
			// reload: take what else arrived meanwhile.
			for {
				drainCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				_, err := conn.WaitForNotification(drainCtx)
				cancel()
				if err != nil {
					break
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.Log.Debug("event types changed; reloaded")
		}
	}
}

package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/outbox"
)

// Service is a background job of the relay: housekeeping beside the
// pipeline (heartbeat, redrive sweep, retention; later webhook delivery and
// schedules). Every one has this one shape. Run works until ctx ends, then
// returns nil once everything it started has stopped; an error means it
// cannot go on (bad settings). Services run only while this relay streams
// from the slot, so a standby does nothing but wait, and they are started
// and stopped with each session by one owner, runServices.
type Service interface {
	// Name names the service in logs.
	Name() string
	Run(ctx context.Context) error
}

// services lists the services of one session: the relay's own, then those
// of Options.Services.
func (r *Relay) services(tr *tracker) []Service {
	var list []Service
	if r.opts.HeartbeatInterval > 0 {
		list = append(list, &heartbeat{pool: r.pool, interval: r.opts.HeartbeatInterval, log: r.log})
	}
	if r.opts.RedriveInterval > 0 {
		list = append(list, &redriveSweep{
			store: r.store, confirmedTime: tr.confirmedTime, log: r.log,
			interval: r.opts.RedriveInterval, after: r.opts.RedriveAfter, maxRetries: r.opts.MaxRetries,
		})
	}
	return append(list, r.opts.Services...)
}

// runServices runs every service until ctx ends and returns once all have
// returned. A service that fails is logged and stays stopped until the next
// session: housekeeping never stops delivery.
func (r *Relay) runServices(ctx context.Context, services []Service) {
	var wg sync.WaitGroup
	for _, s := range services {
		wg.Go(func() {
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("background service stopped until the next session", "service", s.Name(), "err", err)
			}
		})
	}
	wg.Wait()
}

// every calls fn after each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// heartbeat writes a heartbeat to the WAL at every interval (see
// cdc.EmitHeartbeat), so the slot advances even when event_bus is quiet.
type heartbeat struct {
	pool     cdc.Querier
	interval time.Duration
	log      *slog.Logger
}

func (h *heartbeat) Name() string { return "heartbeat" }

func (h *heartbeat) Run(ctx context.Context) error {
	every(ctx, h.interval, func() {
		if err := cdc.EmitHeartbeat(ctx, h.pool); err != nil && ctx.Err() == nil {
			h.log.Debug("heartbeat failed", "err", err)
		}
	})
	return nil
}

// redriveSweep is the safety net under the relay: at every RedriveInterval
// it hands back, through the stream, pending rows that should have been
// delivered by now and failed rows with retries left. "By now" is measured
// against the confirmed position, not the clock: a pending row created more
// than RedriveAfter before the commit time of the last confirmed transaction
// should have been delivered, while a backlog still being drained is left
// alone. RedriveAfter leaves room for long transactions, whose rows are
// created (now()) well before they commit; a row redriven by mistake is only
// published twice, and JetStream or the table status drops the copy.
type redriveSweep struct {
	store *outbox.Store
	// confirmedTime is the session tracker's: the commit time up to which
	// everything is delivered and marked.
	confirmedTime   func() time.Time
	log             *slog.Logger
	interval, after time.Duration
	maxRetries      int
}

func (s *redriveSweep) Name() string { return "redrive sweep" }

func (s *redriveSweep) Run(ctx context.Context) error {
	every(ctx, s.interval, func() {
		at := s.confirmedTime()
		if at.IsZero() {
			return
		}
		n, err := s.store.RedriveStuck(ctx, at.Add(-s.after), s.maxRetries, 1000)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("redrive sweep failed", "err", err)
		case n > 0:
			s.log.Warn("redrive sweep handed back events that should have been delivered by now", "events", n)
		}
	})
	return nil
}

package relay

import (
	"context"
	"sync"
	"time"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/outbox"
)

// Service is a background job of the relay: housekeeping beside the
// pipeline (cdc.Heartbeat, outbox.RedriveSweep, outbox.DelayedRelease,
// outbox.Retention, schedule.Runner), defined by the package that owns what it
// works on. Every one has this one shape. Run works until ctx ends, then
// returns nil once everything it started has stopped; an error means it
// cannot go on (bad settings). Services run only while this relay streams
// from the slot, so a standby does nothing but wait, and they are started
// and stopped with each session by one owner, runServices.
type Service interface {
	// Name names the service in logs.
	Name() string
	Run(ctx context.Context) error
}

// services lists the services of one session: the heartbeat and the
// redrive sweep and the release of delayed events (which read this session's
// tracker), then Options.Services.
func (r *Relay) services(tr *tracker) []Service {
	var list []Service
	if r.opts.HeartbeatInterval > 0 {
		list = append(list, cdc.Heartbeat{DB: r.pool, Interval: r.opts.HeartbeatInterval, Log: r.log})
	}
	if r.opts.RedriveInterval > 0 {
		list = append(list, outbox.RedriveSweep{
			Store: r.store, Interval: r.opts.RedriveInterval, After: r.opts.RedriveAfter, MaxRetries: r.opts.MaxRetries,
			ConfirmedTime: tr.confirmedTime, Log: r.log,
		})
	}
	list = append(list, outbox.DelayedRelease{Store: r.store, Poll: delayedPoll, Confirmed: tr.confirmedLSN, Log: r.log})
	return append(list, r.opts.Services...)
}

// delayedPoll bounds how long the release of delayed events sleeps before
// it looks for new ones; it sleeps until the earliest deliver_at when that
// comes sooner.
const delayedPoll = 500 * time.Millisecond

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

// Package periodic is the loop every background service of eventbus shares
// (heartbeat, redrive sweep, retention, …): call a function at a fixed
// interval until the context ends, with no overlap and no catch-up burst
// after a slow call.
package periodic

import (
	"context"
	"time"
)

// Run calls fn every interval until ctx ends, first at once when immediately
// is set, and returns when ctx ends and fn has returned. Ticks missed while
// fn runs are dropped, so a slow fn is not called back to back. interval
// must be positive.
func Run(ctx context.Context, interval time.Duration, immediately bool, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	if immediately && ctx.Err() == nil {
		fn(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn(ctx)
	}
}

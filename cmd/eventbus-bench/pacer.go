package main

import (
	"context"
	"time"
)

// pacer hands out one token per event at a fixed rate to writers that share
// it. It is open-loop: the schedule does not wait for slow writers. Tokens
// the writers have not taken within the slack are dropped and counted, so a
// rate the writers cannot hold shows up as dropped tokens and a lower
// achieved rate instead of as a backlog that queues forever.
type pacer struct {
	tokens  chan struct{}
	rate    float64
	dropped int64 // set when run returns
}

// pacerTick is the schedule's granularity; at 5k events/s a tick hands out
// about five tokens, close enough to an even spacing for writers whose
// transactions take a millisecond or more.
const pacerTick = time.Millisecond

func newPacer(rate float64) *pacer {
	// 50 ms of tokens: enough to ride out a late tick or a slow commit on a
	// loaded machine without dropping, small enough that a writer backlog
	// never turns into a long burst.
	slack := max(1, int(rate/20))
	return &pacer{tokens: make(chan struct{}, slack), rate: rate}
}

// run issues tokens until ctx ends or d has passed, then closes the token
// channel so that the writers return.
func (p *pacer) run(ctx context.Context, d time.Duration) {
	defer close(p.tokens)
	tick := time.NewTicker(pacerTick)
	defer tick.Stop()
	start := time.Now()
	var issued int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			elapsed := now.Sub(start)
			if elapsed >= d {
				return
			}
			due := int64(p.rate*elapsed.Seconds()) - issued
			for range due {
				select {
				case p.tokens <- struct{}{}:
				default:
					p.dropped++
				}
				issued++
			}
		}
	}
}

package relay

import (
	"context"
	"time"
)

// ackQueue is where the acker takes the next event from: events taken off
// the acks channel early to be sent again come first, in order.
type ackQueue struct {
	acks   <-chan inflight
	queued []inflight
	closed bool
}

// next returns the next event, or open = false once the channel is closed
// and drained, or ticked = true when tick fires first.
func (q *ackQueue) next(ctx context.Context, tick <-chan time.Time) (f inflight, open, ticked bool) {
	if len(q.queued) > 0 {
		f, q.queued = q.queued[0], q.queued[1:]
		return f, true, false
	}
	if q.closed {
		return f, false, false
	}
	select {
	case f, open = <-q.acks:
		q.closed = !open
		return f, open, false
	case <-tick:
		return f, true, true
	case <-ctx.Done():
		return f, false, false
	}
}

// drainUntilClosed moves the events of the channel to the queue until it
// is closed or ctx ends.
func (q *ackQueue) drainUntilClosed(ctx context.Context) {
	for !q.closed {
		select {
		case f, open := <-q.acks:
			if !open {
				q.closed = true
				return
			}
			q.queued = append(q.queued, f)
		case <-ctx.Done():
			return
		}
	}
}

// drain moves every event waiting in the channel to the queue.
func (q *ackQueue) drain() {
	for !q.closed {
		select {
		case f, open := <-q.acks:
			if !open {
				q.closed = true
				return
			}
			q.queued = append(q.queued, f)
		default:
			return
		}
	}
}

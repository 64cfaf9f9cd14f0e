package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/eventbus/eventbus/metrics"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
)

// maxStatusBatch caps the ids of one status UPDATE.
const maxStatusBatch = 1000

// statusWriters is the number of status UPDATEs that may run at once. The
// acker keeps collecting PubAcks while they run, so a status write does not
// stall publishing; two of them keep the write-back ahead of a saturated
// stream on a small machine without taking every connection of the pool.
const statusWriters = 2

// errRetryEvent ends a session so that an event refused asynchronously by the
// stream is published again, after backoff, from the last confirmed position.
var errRetryEvent = errors.New("event refused by the stream; will retry")

// acker is the marking stage of a session. It waits for each PubAck in
// publish order and groups acked events into batches (by size or
// flushInterval), which its status writers mark processed concurrently;
// only then are the events counted done in the tracker, which moves the
// confirmed position. The tracker does not care in which order batches
// finish: the position only moves past a transaction once all of its events
// and all earlier transactions are done.
type acker struct {
	store         *outbox.Store
	tr            *tracker
	failures      *failures
	m             *metrics.Relay
	log           *slog.Logger
	flushInterval time.Duration
}

// run collects acks until acks is closed, ctx ends or a status write fails,
// then hands over the events already acked and returns once the status
// writers are done with them.
func (a *acker) run(ctx context.Context, acks <-chan inflight) error {
	marks := make(chan []inflight, statusWriters)
	free := make(chan []inflight, 2*statusWriters)
	// collectCtx also ends when a status write fails: collecting stops.
	collectCtx, stopCollect := context.WithCancel(ctx)
	defer stopCollect()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		writeErr error
	)
	for range statusWriters {
		wg.Go(func() {
			for b := range marks {
				err := a.markBatch(ctx, b)
				switch {
				case err != nil && ctx.Err() != nil:
					a.log.Warn("final status write failed", "err", err)
				case err != nil:
					errOnce.Do(func() { writeErr = err; stopCollect() })
				}
				select {
				case free <- b[:0]:
				default:
				}
			}
		})
	}
	err := a.collect(collectCtx, acks, marks, free)
	close(marks)
	wg.Wait()
	if writeErr != nil {
		return writeErr
	}
	return err
}

// markBatch marks a batch of acked events processed and counts them done.
// Once ctx has ended (the session is stopping, whatever the reason) the
// batch still gets a few seconds: events already in the stream should not be
// published again.
func (a *acker) markBatch(ctx context.Context, batch []inflight) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
	}
	marks := make([]outbox.Mark, len(batch))
	for i, f := range batch {
		marks[i] = outbox.Mark{ID: f.ev.ID, Xid: f.xid}
	}
	started := time.Now()
	err := a.store.MarkProcessed(ctx, marks)
	a.m.StatusWritten(time.Since(started))
	if err != nil {
		if !errors.Is(err, outbox.ErrInvisible) {
			return fmt.Errorf("%w; those events will be published again", err)
		}
		// Published, but their rows are gone: nothing left to mark.
		a.log.Warn("acked events not found in event_bus; were they deleted?", "err", err)
	}
	for _, f := range batch {
		a.m.Published(f.ev.EventType)
		a.tr.done(f.txn)
	}
	return nil
}

// collect is the acker's loop: it waits for the PubAcks in publish order
// and hands batches of acked events to the status writers through marks.
// Whatever the reason for stopping, the events already acked are handed over.
func (a *acker) collect(ctx context.Context, acks <-chan inflight, marks chan<- []inflight, free <-chan []inflight) error {
	newBatch := func() []inflight {
		select {
		case b := <-free:
			return b
		default:
			return make([]inflight, 0, maxStatusBatch)
		}
	}
	batch := newBatch()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var deadline <-chan time.Time
	flush := func() {
		if len(batch) == 0 {
			return
		}
		// Blocks while every status writer is busy and the queue is full:
		// that back-pressure is what bounds the events acked but unmarked.
		marks <- batch
		batch = newBatch()
		timer.Stop()
		deadline = nil
	}
	defer flush()
	for {
		var f inflight
		var open bool
		select {
		case f, open = <-acks:
		case <-deadline:
			flush()
			continue
		case <-ctx.Done():
			return nil
		}
		if !open {
			return nil
		}
		if f.settled {
			a.tr.done(f.txn)
			continue
		}
		a.m.Unsent()
		for {
			ticked, err := f.ack.WaitOrTick(ctx, deadline)
			if ticked {
				flush()
				continue
			}
			switch {
			case err == nil:
				a.m.Acked(f.sent, f.committed, time.Now())
				batch = append(batch, f)
				if len(batch) == 1 {
					timer.Reset(a.flushInterval)
					deadline = timer.C
				}
				if len(batch) >= maxStatusBatch {
					flush()
				}
			case ctx.Err() != nil:
				return nil
			default:
				if err := a.ackFailed(ctx, f, err); err != nil {
					return err
				}
			}
			break
		}
	}
}

// ackFailed handles a publish that failed after it was sent. A broker
// failure ends the session (the event is published again from the confirmed
// position); a per-event refusal counts one attempt and, unless that was the
// last, also ends the session so the event is retried in order.
func (a *acker) ackFailed(ctx context.Context, f inflight, err error) error {
	if !errors.Is(err, publisher.ErrRejected) {
		return fmt.Errorf("publish event %s: %w", f.ev.ID, err)
	}
	failed, rerr := a.failures.record(ctx, f.ev, err)
	if rerr != nil {
		return rerr
	}
	if !failed {
		return fmt.Errorf("event %s: %w: %w", f.ev.ID, errRetryEvent, err)
	}
	a.tr.done(f.txn)
	return nil
}

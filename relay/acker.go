package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/internal/backoff"
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

// acker is the marking stage of a session. It waits for each PubAck in
// publish order and groups acked events into batches (by size or
// flushInterval), which its status writers mark processed concurrently;
// only then are the events counted done in the tracker, which moves the
// confirmed position. The tracker does not care in which order batches
// finish: the position only moves past a transaction once all of its events
// and all earlier transactions are done.
type acker struct {
	stage
	flushInterval time.Duration
	// unmarked keeps the events acked but not marked when a status write
	// fails, for the next session.
	unmarked *unmarked
	// window holds a token for every event published and not yet settled;
	// the dispatcher puts one in before each publish, the acker takes it out
	// once the event's PubAck arrived or the event failed for good.
	window chan struct{}
	// failing holds why publishes are being sent again, for the relay's
	// readiness; empty while PubAcks arrive.
	failing *atomic.Value
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
			// They are in the stream: the next session marks them before
			// it streams, so its catch-up skips them instead of publishing
			// them again (see Relay.unmarked).
			a.unmarked.add(marks)
			return fmt.Errorf("%w; the next session marks them first", err)
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
//
// A failed publish is retried in place, keeping the session and the order:
// a per-event refusal counts one attempt (once the events acked before it
// are handed over), and is sent again after backoff until it is acked or
// failed for good; a broker error (PubAck timeout, disconnection) means the
// broker is slow or away, so after backoff the event and every event queued
// behind it are sent again at once, pipelined, and waited for in order
// (copies the stream already holds are dropped as duplicates). Only a
// stream that stopped answering (deleted, or no stream for the subject)
// ends the session, so the next one ensures the stream again.
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
	acked := func(f inflight) {
		a.settle(f)
		a.m.Acked(f.sent, f.committed, time.Now())
		batch = append(batch, f)
		if len(batch) == 1 {
			timer.Reset(a.flushInterval)
			deadline = timer.C
		}
		if len(batch) >= maxStatusBatch {
			flush()
		}
	}
	q := &ackQueue{acks: acks}
	// waiting is the event whose PubAck collect waits for, nil once that
	// ack is used up (it failed, or the event is settled).
	var waiting *inflight
	defer func() { a.harvest(ctx, waiting, q, acked) }()
	retry := backoff.New(100*time.Millisecond, 5*time.Second)
	resent := false // the queue was sent again since the last PubAck
	var inProcess inProcessWatch
	for {
		f, open, ticked := q.next(ctx, deadline)
		if ticked {
			flush()
			continue
		}
		if !open {
			return nil
		}
		if ctx.Err() != nil {
			q.queued = append([]inflight{f}, q.queued...)
			return nil
		}
		if f.settled {
			a.tr.done(f.txn)
			continue
		}
		waiting = &f
	wait:
		for {
			ticked, err := f.ack.WaitOrTick(ctx, deadline)
			switch {
			case ticked:
				flush()
				continue
			case err == nil:
				waiting = nil
				acked(f)
				retry.Reset()
				inProcess.reset()
				if resent {
					a.failing.Store("")
				}
				resent = false
				break wait
			case ctx.Err() != nil:
				return nil
			}
			waiting = nil // the ack is used up; a.send gives f a new one
			switch {
			case errors.Is(err, publisher.ErrRejected):
				flush() // what was acked before it is marked first
				failed, rerr := a.failures.record(ctx, f.ev, f.xid, err)
				if rerr != nil {
					return rerr
				}
				if failed {
					a.settle(f)
					a.tr.done(f.txn)
					break wait
				}
				if !backoff.Sleep(ctx, retry.Next()) {
					return nil
				}
				a.send(&f)
				waiting = &f
			case errors.Is(err, jetstream.ErrNoStreamResponse):
				return fmt.Errorf("publish event %s: %w", f.ev.ID, err)
			default:
				flush()
				a.failing.Store(err.Error())
				if now := time.Now(); errors.Is(err, publisher.ErrInProcess) && inProcess.stepDown(f.ev.ID, now) {
					a.stepDownLeader(ctx, f.ev.ID, inProcess.held(now))
				}
				wait := retry.Next()
				a.log.Warn("publish failed; sending the unacked events again", "id", f.ev.ID, "err", err, "retry_in", wait.Round(time.Millisecond).String())
				if !backoff.Sleep(ctx, wait) {
					return nil
				}
				// Not into an election: a stream leader must answer first.
				// Copies sent while a clustered stream changes leaders can
				// be left "in process" on the new leader (409, duplicate
				// message id is in process) until its duplicate window ends.
				for {
					err := a.pub.StreamReady(ctx)
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						return nil
					}
					wait := retry.Next()
					a.log.Debug("stream not answering; waiting", "err", err, "retry_in", wait.Round(time.Millisecond).String())
					if !backoff.Sleep(ctx, wait) {
						return nil
					}
				}
				a.send(&f)
				waiting = &f
				if resent {
					continue // those copies are on their way
				}
				resent = true
				q.drain()
				for i := range q.queued {
					if !q.queued[i].settled {
						a.send(&q.queued[i])
					}
				}
			}
		}
	}
}

// A stream leader normally answers "duplicate message id is in process"
// (publisher.ErrInProcess) only while its proposal of that message is on
// its way, for milliseconds. One that lost the proposal in a leader change
// can keep the id in process, and the stream stalled behind it, until the
// duplicate window has passed (2 minutes by default, and operators set
// hours); TestClusterFailoverMidBurstLosesNothing met it once in CI, on
// nats-server 2.15.2. So once the same event has been answered that way for
// inProcessPatience, the acker asks the leader to step down, at most once
// per stepDownEvery: another replica holds no proposal of its own for the
// id, and stores the event or acks it as the duplicate it is.
const (
	inProcessPatience = 10 * time.Second
	stepDownEvery     = 30 * time.Second
)

// inProcessWatch tells when a leader has held the event the acker waits
// for as in process for too long.
type inProcessWatch struct {
	id        string    // the event last answered ErrInProcess; "" after an ack
	since     time.Time // its first such answer
	steppedAt time.Time // when a step-down was last asked for
}

// stepDown records an ErrInProcess answer for event id at now and reports
// whether to ask the stream leader to step down.
func (w *inProcessWatch) stepDown(id string, now time.Time) bool {
	if w.id != id {
		w.id, w.since = id, now
		return false
	}
	if now.Sub(w.since) < inProcessPatience || (!w.steppedAt.IsZero() && now.Sub(w.steppedAt) < stepDownEvery) {
		return false
	}
	w.steppedAt = now
	return true
}

// held is how long the current event has been answered ErrInProcess at now.
func (w *inProcessWatch) held(now time.Time) time.Duration { return now.Sub(w.since) }

// reset forgets the event: it was acked.
func (w *inProcessWatch) reset() { w.id = "" }

// stepDownLeader asks the stream leader to step down (see inProcessWatch).
// A refusal (no permission, a stream that is not replicated) is logged and
// changes nothing: the event is sent again until the leader forgets the id.
func (a *acker) stepDownLeader(ctx context.Context, id string, held time.Duration) {
	a.log.Warn("the stream leader keeps answering that the event is in process; asking it to step down",
		"id", id, "for", held.Round(time.Second).String())
	if err := a.pub.StepDownStreamLeader(ctx); err != nil {
		a.log.Warn("stream leader step-down failed; the event is sent again until the leader's duplicate window ends", "id", id, "err", err)
		return
	}
	a.m.LeaderSteppedDown()
	a.log.Info("stream leader stepped down", "id", id)
}

// harvestGrace bounds how long a failed session's acker still waits for the
// PubAcks of events it had published.
const harvestGrace = 5 * time.Second

// errDrainTimedOut is the cause with which a graceful stop ends the acker
// once ShutdownTimeout has passed: harvest waits no longer then.
var errDrainTimedOut = errors.New("shutdown timeout")

// harvest is collect's last step; it matters when the session ends early (a
// stage failed: the database went away, say): the events still waiting for their
// PubAcks — the one collect was waiting for, those queued to be sent again,
// those in the channel — may be acked already, or within harvestGrace.
// Each that is goes to acked, to be marked like any other (or, when the
// database is what failed, kept for the next session), so the catch-up
// after the failure publishes again only what the broker never acknowledged:
// an outage longer than the stream's duplicate window would store copies.
func (a *acker) harvest(ctx context.Context, waiting *inflight, q *ackQueue, acked func(inflight)) {
	grace := harvestGrace
	if errors.Is(context.Cause(ctx), errDrainTimedOut) {
		grace = 0 // a stop that waited ShutdownTimeout already
	}
	waitCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if ctx.Err() != nil {
		// Another stage ended the session: the dispatcher is stopping too,
		// and closes the channel once its last publish is handed over.
		q.drainUntilClosed(waitCtx)
	} else {
		q.drain() // collect itself failed: the dispatcher still runs
	}
	left := q.queued
	if waiting != nil {
		left = append([]inflight{*waiting}, left...)
	}
	n := 0
	for _, f := range left {
		if f.settled {
			continue
		}
		if err := f.ack.Wait(waitCtx); err == nil {
			acked(f)
			n++
		}
	}
	if len(left) > 0 {
		a.log.Debug("session ended: acked events marked before the next session", "acked", n, "unacked", len(left)-n)
	}
}

// settle ends the wait for f's PubAck: its window slot is free again.
func (a *acker) settle(f inflight) {
	a.m.Unsent()
	<-a.window
}

// send publishes f's event again and gives f the new ack; a publish that
// fails at once is waited for like one that failed later.
func (a *acker) send(f *inflight) {
	ack, err := a.pub.Publish(f.ev)
	if err != nil {
		ack = publisher.FailedAck(err)
	}
	f.ack, f.sent = ack, time.Now()
}

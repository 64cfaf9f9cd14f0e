package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/internal/backoff"
	"github.com/eventbus/eventbus/metrics"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
)

// inflight is an event handed from the dispatcher to the acker, in publish order.
type inflight struct {
	ev  *event.Event
	txn *txn
	ack publisher.Ack
	// sent is when the event was published; committed is its transaction's
	// commit time, zero for backfilled and redriven events. Both for metrics.
	sent, committed time.Time
	// settled is set when the event needs no ack: it was marked failed.
	settled bool
	// xid is the id of the transaction that inserted the row, when the row
	// came from the stream (0 for backfilled and redriven rows, read from the
	// table): a status write waits for rows of a transaction still committing.
	xid uint32
}

// stage is what the dispatcher and the acker of one session share.
type stage struct {
	pub      *publisher.Publisher
	store    *outbox.Store
	tr       *tracker
	failures *failures
	m        *metrics.Relay
	log      *slog.Logger
}

// errAckerGone ends the dispatcher when the acker has quit; the acker's own
// error is the session's.
var errAckerGone = errors.New("acker stopped")

// catchUpBatch bounds the events whose statuses are looked up at once while
// catching up.
const catchUpBatch = 500

// A redrive message's ids are loaded redriveChunk at a time, so memory
// stays bounded by the chunk, not the message; past maxRedriveIDs a message's
// ids are ignored (their rows stay pending, for the redrive sweep).
const (
	redriveChunk  = 1000
	maxRedriveIDs = 100000
)

// dispatcher is the publishing stage of a session: it publishes the
// backfill, then every event of the stream in commit order, and hands each
// outstanding ack to the acker. The acks channel's capacity is the publish
// window. It keeps the state of dispatch between changes.
type dispatcher struct {
	stage

	acks      chan<- inflight
	ackerDone <-chan struct{}
	window    chan struct{} // see acker.window

	coalesce     coalescer
	cur          *txn
	committed    time.Time // commit time of cur
	catchUpUntil pglogrepl.LSN
	catchingUp   bool
}

// run dispatches until ctx ends or a step fails.
//
// Transactions that committed before this session started (commit LSN below
// catchUpUntil) may have been published and marked by an earlier session that
// died before confirming them. Their rows are looked up in batches and those
// already processed or failed are skipped: the table is the durable dedup
// record, whatever JetStream's duplicate window has forgotten meanwhile.
func (d *dispatcher) run(ctx context.Context, changes <-chan []cdc.Change, backfill pgx.Tx, slot cdc.Slot) error {
	err := d.dispatch(ctx, changes, backfill, slot)
	if ctx.Err() != nil {
		// Stopping, in a backoff, a lookup or the backfill: not a failure.
		// What was published is drained by the acker; the rest is
		// delivered by the next session.
		return nil
	}
	return err
}

func (d *dispatcher) dispatch(ctx context.Context, changes <-chan []cdc.Change, backfill pgx.Tx, slot cdc.Slot) error {
	if backfill != nil {
		defer d.m.Backfilling(false)
		if err := d.backfill(ctx, backfill, slot); err != nil {
			return err
		}
	}
	var gathered []cdc.Change
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		var b []cdc.Change
		select {
		case b = <-changes:
		case <-ctx.Done():
			return nil
		}
		d.coalesce.arrived(time.Now())
		if d.coalesce.busy() {
			if b = d.hold(ctx, changes, b, linger); ctx.Err() != nil {
				return nil
			}
		}
		for i, c := range b {
			if c.Kind != cdc.Insert || !d.catchingUp {
				if err := d.handle(ctx, c, nil); err != nil {
					return err
				}
				continue
			}
			// Catching up: the rest of this batch and what else is waiting
			// (up to catchUpBatch ids) are looked up at once.
			gathered = append(gathered[:0], b[i:]...)
			var ids []string
			for _, c := range gathered {
				ids = appendID(ids, c)
			}
		gather:
			for len(ids) < catchUpBatch {
				select {
				case more := <-changes:
					d.coalesce.arrived(time.Now())
					gathered = append(gathered, more...)
					for _, c := range more {
						ids = appendID(ids, c)
					}
				default:
					break gather
				}
			}
			settled, err := d.store.Settled(ctx, ids)
			if err != nil {
				return err
			}
			for _, c := range gathered {
				if err := d.handle(ctx, c, settled); err != nil {
					return err
				}
			}
			break
		}
	}
}

// hold appends to b what arrives within the linger, up to maxCoalesced
// changes, so that it is published with b, in one write to NATS (see
// coalescer). It returns early when ctx ends.
func (d *dispatcher) hold(ctx context.Context, changes <-chan []cdc.Change, b []cdc.Change, linger *time.Timer) []cdc.Change {
	d.m.Held()
	linger.Reset(d.coalesce.linger)
	defer linger.Stop()
	for len(b) < maxCoalesced {
		select {
		case more := <-changes:
			d.coalesce.arrived(time.Now())
			b = append(b, more...)
		case <-linger.C:
			return b
		case <-ctx.Done():
			return b
		}
	}
	return b
}

// appendID appends the id of an insert that decoded cleanly.
func appendID(ids []string, c cdc.Change) []string {
	if c.Kind == cdc.Insert && c.Event.DecodeErr == nil && c.Event.ID != "" {
		ids = append(ids, c.Event.ID)
	}
	return ids
}

// handle applies one change; inserts whose id is in skip are not published.
func (d *dispatcher) handle(ctx context.Context, c cdc.Change, skip map[string]bool) error {
	switch c.Kind {
	case cdc.Begin:
		d.cur = d.tr.begin(c.CommitTime)
		d.cur.xid = c.Xid
		d.committed = c.CommitTime
		d.catchingUp = c.CommitLSN < d.catchUpUntil
	case cdc.Insert:
		if d.cur == nil {
			return fmt.Errorf("replication stream: insert outside a transaction")
		}
		if skip[c.Event.ID] {
			d.m.CatchUpSkipped()
			return nil
		}
		if st := c.Event.Status; st != "" && st != event.StatusPending {
			// Inserted as processed or failed (an import, a copy of history):
			// not for delivery; process_pending_events can hand it back.
			d.log.Debug("skipping a row inserted with status "+st, "id", c.Event.ID)
			return nil
		}
		if now, err := d.due(ctx, d.cur, c.Event, true); !now {
			return err
		}
		return d.publish(ctx, d.cur, c.Event, d.committed)
	case cdc.Redrive:
		if d.cur == nil {
			return fmt.Errorf("replication stream: redrive message outside a transaction")
		}
		if len(c.InvalidIDs) > 0 {
			d.log.Warn("redrive message: ignoring what is not an event id", "tokens", len(c.InvalidIDs), "first", truncate(c.InvalidIDs[0], 80))
		}
		ids := c.IDs
		if len(ids) > maxRedriveIDs {
			d.log.Warn("redrive message: handing back the first ids only; the redrive sweep gets the rest",
				"ids", len(ids), "handed_back", maxRedriveIDs)
			ids = ids[:maxRedriveIDs]
		}
		pending := 0
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), redriveChunk)]
			ids = ids[len(chunk):]
			events, err := d.store.PendingByIDs(ctx, chunk)
			if err != nil {
				return err
			}
			pending += len(events)
			for i := range events {
				if now, err := d.due(ctx, d.cur, &events[i], false); !now {
					if err != nil {
						return err
					}
					continue
				}
				if err := d.publish(ctx, d.cur, &events[i], time.Time{}); err != nil {
					return err
				}
			}
		}
		d.log.Info("redrive", "requested", len(c.IDs), "pending", pending)
	case cdc.Commit:
		if d.cur == nil {
			return fmt.Errorf("replication stream: commit outside a transaction")
		}
		d.tr.commit(d.cur, c.EndLSN)
		d.cur = nil
	case cdc.Position:
		// Everything before this keepalive is already in the tracker, so
		// its WAL end is safe to confirm once they are done.
		d.tr.commit(d.tr.begin(c.CommitTime), c.WALEnd)
	}
	return nil
}

// backfill publishes the pending rows tx sees as one transaction of the
// tracker without an end; once all of them are acked and marked, the slot's
// backfill is recorded as done.
func (d *dispatcher) backfill(ctx context.Context, tx pgx.Tx, slot cdc.Slot) error {
	started := time.Now()
	d.m.Backfilling(true)
	x := d.tr.begin(time.Time{})
	n, err := outbox.ScanPending(ctx, tx, func(e event.Event) error {
		d.m.Backfilled()
		if now, err := d.due(ctx, x, &e, false); !now {
			return err
		}
		return d.publish(ctx, x, &e, time.Time{})
	})
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	x.onDone = func() {
		d.m.Backfilling(false)
		doneCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.store.SetBackfillDone(doneCtx, slot.Name, true); err != nil {
			d.log.Warn("backfill done but not recorded; it will run again", "err", err)
			return
		}
		// Recorded after the backfill: a promotion's backfill that did not
		// finish runs again.
		if err := d.store.SetTimeline(doneCtx, slot.Name, slot.Timeline); err != nil {
			d.log.Warn("backfill done but its timeline not recorded; it will run again", "err", err)
			return
		}
		d.log.Info("backfill done", "slot", slot.Name, "events", n, "took", time.Since(started).Round(time.Millisecond).String())
	}
	d.tr.commit(x, 0)
	return nil
}

// publish sends one event. A per-event rejection is recorded in the table
// (retry_count+1, error_message) and retried after backoff, in place, so no
// later event overtakes it; once its retries are used up it is marked failed
// and the stream moves on. A permanent one (publisher.ErrPermanent: the
// payload fails its type's schema, checked by the publisher's catalog) is
// marked failed at once. Any other error ends the session. committed is the
// commit time of e's transaction, zero when unknown.
func (d *dispatcher) publish(ctx context.Context, x *txn, e *event.Event, committed time.Time) error {
	d.tr.add(x)
	var xid uint32
	if !committed.IsZero() {
		xid = x.xid
	}
	wait := backoff.New(100*time.Millisecond, 5*time.Second)
	for {
		// A slot of the window first: nats.go never holds more unacked
		// publishes than the pipeline, so a slow broker slows publishing
		// down instead of failing it.
		select {
		case d.window <- struct{}{}:
		case <-d.ackerDone:
			return errAckerGone
		case <-ctx.Done():
			return ctx.Err()
		}
		sent := time.Now()
		ack, err := d.pub.Publish(e)
		if err == nil || !errors.Is(err, publisher.ErrRejected) {
			if err != nil {
				// The broker's trouble, not the event's: the acker retries
				// it in place like a publish that failed after sending.
				ack = publisher.FailedAck(err)
			}
			// The message is on its way: hand its ack to the acker even when
			// stopping, so a graceful stop marks everything it published.
			// There is room (the window slot taken above is one of acks'),
			// and a failed session's acker still harvests the channel, so
			// the send comes first; only an acker that has quit for good is
			// not waited for.
			f := inflight{ev: e, txn: x, ack: ack, sent: sent, committed: committed, xid: xid}
			select {
			case d.acks <- f:
				d.m.Sent()
				return nil
			default:
			}
			select {
			case d.acks <- f:
				d.m.Sent()
				return nil
			case <-d.ackerDone:
				return errAckerGone
			}
		}
		<-d.window // nothing was sent
		failed, err := d.failures.record(ctx, e, xid, err)
		if err != nil {
			return err
		}
		if failed {
			select {
			case d.acks <- inflight{ev: e, txn: x, settled: true}:
				return nil
			case <-d.ackerDone:
				return errAckerGone
			}
		}
		if !backoff.Sleep(ctx, wait.Next()) {
			return ctx.Err()
		}
	}
}

// failures records per-event rejections on their rows, for the dispatcher
// (refused before sending) and the acker (refused in the PubAck).
type failures struct {
	store      *outbox.Store
	pub        *publisher.Publisher // for dead letters
	maxRetries int
	m          *metrics.Relay
	log        *slog.Logger
}

// record counts one failed attempt of e with cause as its error_message and
// reports whether e is settled: failed for good (retries used up), or a row
// that cannot be marked at all, so the stream moves on past it.
func (f *failures) record(ctx context.Context, e *event.Event, xid uint32, cause error) (failed bool, err error) {
	if e.ID == "" {
		// Without an id the row cannot be marked; nothing else can be done.
		f.log.Error("skipping an event_bus row without id", "err", cause)
		return true, nil
	}
	if errors.Is(cause, publisher.ErrPermanent) {
		// Its payload fails its schema: the same payload will fail every
		// retry, so it fails now and the stream moves on.
		failed, err = f.store.FailNow(ctx, e.ID, xid, cause.Error())
	} else {
		failed, err = f.store.RecordFailure(ctx, e.ID, xid, cause.Error(), f.maxRetries)
	}
	if errors.Is(err, outbox.ErrInvisible) {
		f.log.Warn("rejected event not found in event_bus; was it deleted?", "id", e.ID, "err", cause)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	f.m.AttemptFailed(e.EventType)
	if failed {
		f.m.Failed(e.EventType)
		f.log.Warn("event failed", "id", e.ID, "event_type", e.EventType, "err", cause)
		f.deadLetter(ctx, e, cause)
	} else {
		f.log.Debug("event rejected; will retry", "id", e.ID, "err", cause)
	}
	return failed, nil
}

// deadLetter copies a failed event to the dead-letter stream. The table
// already says it failed; a copy that cannot be published is logged.
func (f *failures) deadLetter(ctx context.Context, e *event.Event, cause error) {
	if f.pub == nil {
		return
	}
	retries, err := f.store.RetryCount(ctx, e.ID)
	if err == nil {
		err = f.pub.PublishDeadLetter(ctx, e, retries, cause.Error())
	}
	if err != nil && ctx.Err() == nil {
		f.log.Warn("dead letter not published", "id", e.ID, "err", err)
	}
}

// truncate shortens s to at most n bytes for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

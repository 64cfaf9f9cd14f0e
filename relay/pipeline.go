package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
)

// maxStatusBatch caps the ids of one status UPDATE.
const maxStatusBatch = 1000

// inflight is an event handed from the dispatcher to the acker, in publish order.
type inflight struct {
	event *event.Event
	txn   *txn
	ack   publisher.Ack
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

// errRetryEvent ends a session so that an event refused asynchronously by the
// stream is published again, after backoff, from the last confirmed position.
var errRetryEvent = errors.New("event refused by the stream; will retry")

// errAckerGone ends the dispatcher when the acker has quit; the acker's own
// error is the session's.
var errAckerGone = errors.New("acker stopped")

// pipeline runs the reader, dispatcher and acker of one session. It returns
// when ctx ends (after draining) or when one of them fails.
func (r *Relay) pipeline(ctx context.Context, stream *cdc.Stream, backfill pgx.Tx, catchUpUntil pglogrepl.LSN) error {
	tr := newTracker(stream.Slot().ConfirmedLSN, stream.Confirm)
	changes := make(chan cdc.Change, 256)
	acks := make(chan inflight, r.opts.PublishWindow)

	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	ackCtx, stopAck := context.WithCancel(context.Background())
	defer stopAck()

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		if err == nil {
			return
		}
		errOnce.Do(func() { firstErr = err })
		stopRead()
		stopAck()
	}
	wg.Go(func() { fail(stream.Run(readCtx, changes)) })
	wg.Go(func() {
		defer close(acks)
		d := &dispatcher{r: r, tr: tr, acks: acks, ackerDone: ackCtx.Done(), catchUpUntil: catchUpUntil}
		fail(d.run(readCtx, changes, backfill, stream.Slot()))
	})
	wg.Go(func() { fail(r.acknowledge(ackCtx, tr, acks)) })
	if r.opts.HeartbeatInterval > 0 {
		wg.Go(func() { r.heartbeat(readCtx) })
	}
	if r.opts.RedriveInterval > 0 {
		wg.Go(func() { r.sweep(readCtx, tr) })
	}

	// On a graceful stop the acker drains what was published, bounded in time.
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(r.opts.ShutdownTimeout):
				r.log.Warn("shutdown timeout: leaving unacked events to the next run")
				stopAck()
			case <-stopped:
			}
		case <-stopped:
		}
	}()
	wg.Wait()
	close(stopped)
	if ctx.Err() != nil && firstErr == nil {
		r.log.Info("stopped", "confirmed", stream.Confirmed().String(), "unconfirmed_txns", tr.inFlight())
	}
	return firstErr
}

// heartbeat writes a tiny transactional logical decoding message into the
// WAL of this database at every interval. Its transaction comes back through
// the stream like any other and its end is confirmed, so the slot advances
// even when event_bus is quiet and the WAL is written by other databases,
// whose changes this slot's walsender does not send.
func (r *Relay) heartbeat(ctx context.Context) {
	t := time.NewTicker(r.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := r.pool.Exec(ctx, `SELECT pg_logical_emit_message(true, 'eventbus.heartbeat', '')`); err != nil && ctx.Err() == nil {
			r.log.Debug("heartbeat failed", "err", err)
		}
	}
}

// sweep is the safety net under the relay: at every RedriveInterval it hands
// back, through the stream, pending rows that should have been delivered by
// now and failed rows with retries left. "By now" is measured against the
// confirmed position, not the clock: a pending row created more than
// RedriveAfter before the commit time of the last confirmed transaction
// should have been delivered, while a backlog still being drained is left
// alone. RedriveAfter leaves room for long transactions, whose rows are
// created (now()) well before they commit; a row redriven by mistake is only
// published twice, and JetStream or the table status drops the copy.
func (r *Relay) sweep(ctx context.Context, tr *tracker) {
	t := time.NewTicker(r.opts.RedriveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at := tr.confirmedTime()
		if at.IsZero() {
			continue
		}
		n, err := r.store.RedriveStuck(ctx, at.Add(-r.opts.RedriveAfter), r.opts.MaxRetries, 1000)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("redrive sweep failed", "err", err)
		case n > 0:
			r.log.Warn("redrive sweep handed back events that should have been delivered by now", "events", n)
		}
	}
}

// catchUpBatch bounds the events whose statuses are looked up at once while
// catching up.
const catchUpBatch = 500

// run publishes the backfill, then every event of the stream in commit
// order, handing each outstanding ack to the acker. The acks channel's
// capacity is the publish window.
//
// Transactions that committed before this session started (commit LSN below
// catchUpUntil) may have been published and marked by an earlier session that
// died before confirming them. Their rows are looked up in batches and those
// already processed or failed are skipped: the table is the durable dedup
// record, whatever JetStream's duplicate window has forgotten meanwhile.
func (d *dispatcher) run(ctx context.Context, changes <-chan cdc.Change, backfill pgx.Tx, slot cdc.Slot) error {
	r := d.r
	if backfill != nil {
		defer r.m.backfilling.Set(0)
		if err := d.backfill(ctx, backfill, slot); err != nil {
			return err
		}
	}
	batch := make([]cdc.Change, 0, 2*catchUpBatch)
	for {
		var c cdc.Change
		select {
		case c = <-changes:
		case <-ctx.Done():
			return nil
		}
		if c.Kind != cdc.Insert || !d.catchingUp {
			if err := d.handle(ctx, c, nil); err != nil {
				return err
			}
			continue
		}
		batch = append(batch[:0], c)
		ids := appendID(nil, c)
	gather:
		for len(ids) < catchUpBatch {
			select {
			case c := <-changes:
				batch = append(batch, c)
				ids = appendID(ids, c)
			default:
				break gather
			}
		}
		settled, err := r.store.Settled(ctx, ids)
		if err != nil {
			return err
		}
		for _, c := range batch {
			if err := d.handle(ctx, c, settled); err != nil {
				return err
			}
		}
	}
}

// appendID appends the id of an insert that decoded cleanly.
func appendID(ids []string, c cdc.Change) []string {
	if c.Kind == cdc.Insert && c.Event.DecodeErr == nil && c.Event.ID != "" {
		ids = append(ids, c.Event.ID)
	}
	return ids
}

// dispatcher is the state of dispatch between changes.
type dispatcher struct {
	r            *Relay
	tr           *tracker
	acks         chan<- inflight
	ackerDone    <-chan struct{}
	cur          *txn
	committed    time.Time // commit time of cur
	catchUpUntil pglogrepl.LSN
	catchingUp   bool
}

// handle applies one change; inserts whose id is in skip are not published.
func (d *dispatcher) handle(ctx context.Context, c cdc.Change, skip map[string]bool) error {
	r, tr := d.r, d.tr
	switch c.Kind {
	case cdc.Begin:
		d.cur = tr.begin(c.CommitTime)
		d.cur.xid = c.Xid
		d.committed = c.CommitTime
		d.catchingUp = c.LSN < d.catchUpUntil
	case cdc.Insert:
		if d.cur == nil {
			return fmt.Errorf("replication stream: insert outside a transaction")
		}
		if skip[c.Event.ID] {
			r.m.skipped.Inc()
			return nil
		}
		if st := c.Event.Status; st != "" && st != event.StatusPending {
			// Inserted as processed or failed (an import, a copy of history):
			// not for delivery; process_pending_events can hand it back.
			r.log.Debug("skipping a row inserted with status "+st, "id", c.Event.ID)
			return nil
		}
		return d.publish(ctx, d.cur, c.Event, d.committed)
	case cdc.Redrive:
		if d.cur == nil {
			return fmt.Errorf("replication stream: redrive message outside a transaction")
		}
		if len(c.InvalidIDs) > 0 {
			r.log.Warn("redrive message: ignoring what is not an event id", "tokens", len(c.InvalidIDs), "first", truncate(c.InvalidIDs[0], 80))
		}
		if len(c.IDs) == 0 {
			return nil
		}
		events, err := r.store.PendingByIDs(ctx, c.IDs)
		if err != nil {
			return err
		}
		r.log.Info("redrive", "requested", len(c.IDs), "pending", len(events))
		for i := range events {
			if err := d.publish(ctx, d.cur, &events[i], time.Time{}); err != nil {
				return err
			}
		}
	case cdc.Commit:
		if d.cur == nil {
			return fmt.Errorf("replication stream: commit outside a transaction")
		}
		tr.commit(d.cur, c.LSN)
		d.cur = nil
	case cdc.Position:
		// Everything before this keepalive is already in the tracker, so
		// its WAL end is safe to confirm once they are done.
		tr.commit(tr.begin(c.CommitTime), c.LSN)
	}
	return nil
}

func (d *dispatcher) backfill(ctx context.Context, tx pgx.Tx, slot cdc.Slot) error {
	r, tr := d.r, d.tr
	started := time.Now()
	r.m.backfilling.Set(1)
	x := tr.begin(time.Time{})
	n, err := outbox.ScanPending(ctx, tx, func(e event.Event) error {
		r.m.backfilled.Inc()
		return d.publish(ctx, x, &e, time.Time{})
	})
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	x.onDone = func() {
		r.m.backfilling.Set(0)
		doneCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.store.SetBackfillDone(doneCtx, slot.Name, true); err != nil {
			r.log.Warn("backfill done but not recorded; it will run again", "err", err)
			return
		}
		r.log.Info("backfill done", "slot", slot.Name, "events", n, "took", time.Since(started).Round(time.Millisecond).String())
	}
	tr.commit(x, 0)
	return nil
}

// publish sends one event. A per-event rejection is recorded in the table
// (retry_count+1, error_message) and retried after backoff, in place, so no
// later event overtakes it; once its retries are used up it is marked failed
// and the stream moves on. Any other error ends the session. committed is the
// commit time of e's transaction, zero when unknown.
func (d *dispatcher) publish(ctx context.Context, x *txn, e *event.Event, committed time.Time) error {
	r, acks, ackerDone := d.r, d.acks, d.ackerDone
	d.tr.add(x)
	var xid uint32
	if !committed.IsZero() {
		xid = x.xid
	}
	wait := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		sent := time.Now()
		ack, err := r.pub.Publish(e)
		if err == nil {
			// The message is on its way: hand its ack to the acker even when
			// stopping, so a graceful stop marks everything it published. Only
			// an acker that has quit (session failed) is not waited for.
			select {
			case acks <- inflight{event: e, txn: x, ack: ack, sent: sent, committed: committed, xid: xid}:
				r.m.inflight.Inc()
				return nil
			case <-ackerDone:
				return errAckerGone
			}
		}
		if !errors.Is(err, publisher.ErrRejected) {
			return fmt.Errorf("publish event %s: %w", e.ID, err)
		}
		failed, err := r.recordFailure(ctx, e, err)
		if err != nil {
			return err
		}
		if failed {
			select {
			case acks <- inflight{event: e, txn: x, settled: true}:
				return nil
			case <-ackerDone:
				return errAckerGone
			}
		}
		select {
		case <-time.After(wait.next()):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Relay) recordFailure(ctx context.Context, e *event.Event, cause error) (failed bool, err error) {
	if e.ID == "" {
		// Without an id the row cannot be marked; nothing else can be done.
		r.log.Error("skipping an event_bus row without id", "err", cause)
		return true, nil
	}
	failed, err = r.store.RecordFailure(ctx, e.ID, cause.Error(), r.opts.MaxRetries)
	if errors.Is(err, outbox.ErrInvisible) {
		r.log.Warn("rejected event not found in event_bus; was it deleted?", "id", e.ID, "err", cause)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	r.m.retried.WithLabelValues(r.m.eventType(e.EventType)).Inc()
	if failed {
		r.m.failed.WithLabelValues(r.m.eventType(e.EventType)).Inc()
		r.log.Warn("event failed", "id", e.ID, "event_type", e.EventType, "err", cause)
	} else {
		r.log.Debug("event rejected; will retry", "id", e.ID, "err", cause)
	}
	return failed, nil
}

// statusWriters is the number of status UPDATEs that may run at once. The
// acker keeps collecting PubAcks while they run, so a status write does not
// stall publishing; two of them keep the write-back ahead of a saturated
// stream on a small machine without taking every connection of the pool.
const statusWriters = 2

// acknowledge waits for each PubAck in publish order and groups acked events
// into batches (by size or FlushInterval), which status writers mark
// processed concurrently; only then are the events counted done in the
// tracker, which moves the confirmed position. The tracker does not care in
// which order batches finish: the position only moves past a transaction
// once all of its events and all earlier transactions are done.
func (r *Relay) acknowledge(ctx context.Context, tr *tracker, acks <-chan inflight) error {
	marks := make(chan []inflight, statusWriters)
	free := make(chan []inflight, 2*statusWriters)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		writeErr error
	)
	// failed is closed when a status write failed; the acker then stops.
	failed := make(chan struct{})
	for range statusWriters {
		wg.Go(func() {
			for b := range marks {
				err := r.markBatch(ctx, tr, b)
				switch {
				case err != nil && ctx.Err() != nil:
					r.log.Warn("final status write failed", "err", err)
				case err != nil:
					errOnce.Do(func() { writeErr = err; close(failed) })
				}
				select {
				case free <- b[:0]:
				default:
				}
			}
		})
	}
	err := r.collectAcks(ctx, tr, acks, marks, free, failed)
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
func (r *Relay) markBatch(ctx context.Context, tr *tracker, batch []inflight) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
	}
	marks := make([]outbox.Mark, len(batch))
	for i, f := range batch {
		marks[i] = outbox.Mark{ID: f.event.ID, Xid: f.xid}
	}
	started := time.Now()
	err := r.store.MarkProcessed(ctx, marks)
	r.m.statusWrite.Observe(time.Since(started).Seconds())
	if err != nil {
		if !errors.Is(err, outbox.ErrInvisible) {
			return fmt.Errorf("%w; those events will be published again", err)
		}
		// Published, but their rows are gone: nothing left to mark.
		r.log.Warn("acked events not found in event_bus; were they deleted?", "err", err)
	}
	for _, f := range batch {
		r.m.published.WithLabelValues(r.m.eventType(f.event.EventType)).Inc()
		tr.done(f.txn)
	}
	return nil
}

// collectAcks is the acker's loop: it waits for the PubAcks in publish order
// and hands batches of acked events to the status writers through marks.
// Whatever the reason for stopping, the events already acked are handed over.
func (r *Relay) collectAcks(ctx context.Context, tr *tracker, acks <-chan inflight, marks chan<- []inflight, free <-chan []inflight, failed <-chan struct{}) error {
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
		case <-failed:
			return nil
		case <-ctx.Done():
			return nil
		}
		if !open {
			return nil
		}
		if f.settled {
			tr.done(f.txn)
			continue
		}
		r.m.inflight.Dec()
	wait:
		for {
			select {
			case <-f.ack.Ok():
				r.m.acked(f, time.Now())
				batch = append(batch, f)
				if len(batch) == 1 {
					timer.Reset(r.opts.FlushInterval)
					deadline = timer.C
				}
				if len(batch) >= maxStatusBatch {
					flush()
				}
				break wait
			case err := <-f.ack.Err():
				if err := r.ackFailed(ctx, tr, f, publisher.Classify(err)); err != nil {
					return err
				}
				break wait
			case <-deadline:
				flush()
			case <-failed:
				return nil
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// ackFailed handles a publish that failed after it was sent. A broker
// failure ends the session (the event is published again from the confirmed
// position); a per-event refusal counts one attempt and, unless that was the
// last, also ends the session so the event is retried in order.
func (r *Relay) ackFailed(ctx context.Context, tr *tracker, f inflight, err error) error {
	if !errors.Is(err, publisher.ErrRejected) {
		return fmt.Errorf("publish event %s: %w", f.event.ID, err)
	}
	failed, rerr := r.recordFailure(ctx, f.event, err)
	if rerr != nil {
		return rerr
	}
	if !failed {
		return fmt.Errorf("event %s: %w: %w", f.event.ID, errRetryEvent, err)
	}
	tr.done(f.txn)
	return nil
}

// truncate shortens s to at most n bytes for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package relay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/cdc"
)

// session runs one replication connection from connect to failure or stop.
func (r *Relay) session(ctx context.Context) error {
	if err := r.pub.EnsureStream(ctx); err != nil {
		return err
	}
	// Dead letters are a copy for operators (the table keeps the failure):
	// a stream the relay may not create is a warning, not an outage.
	if err := r.pub.EnsureDeadLetterStream(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		r.log.Warn("dead-letter stream unavailable; failed events are not copied to it", "err", err)
	}
	if n, err := r.unmarked.write(ctx, r.store); err != nil {
		return err
	} else if n > 0 {
		r.log.Info("marked the events the last session had acked but not marked", "events", n)
	}
	stream, err := cdc.Open(ctx, r.opts.DatabaseURL, r.opts.Source)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stream.Close(closeCtx); err != nil {
			r.log.Debug("close replication connection", "err", err)
		}
	}()
	slot := stream.Slot()

	backfill, err := r.openBackfill(ctx, slot)
	if err != nil {
		return err
	}
	if backfill != nil {
		defer func() { _ = backfill.Rollback(context.Background()) }()
	}
	// Transactions committed before now may have been handled by an earlier
	// session that died before confirming them; see the dispatcher.
	var catchUpUntil pglogrepl.LSN
	if !slot.Created {
		if catchUpUntil, err = cdc.CurrentWALPosition(ctx, r.pool); err != nil {
			return err
		}
	}
	if err := stream.Start(ctx); err != nil {
		return err
	}
	r.streaming.Store(true)
	r.log.Info("streaming", "slot", slot.Name, "from", slot.ConfirmedLSN.String(), "server_version", stream.ServerVersion())
	return r.pipeline(ctx, stream, backfill, catchUpUntil)
}

// openBackfill starts the read of pending rows the stream will not deliver:
// for a new slot, every pending row in its exported snapshot; for a slot
// whose backfill never completed, or resumed on a new timeline (a promoted
// standby), every pending row (rows also in the stream are published twice
// and deduplicated by JetStream).
func (r *Relay) openBackfill(ctx context.Context, slot cdc.Slot) (pgx.Tx, error) {
	if slot.Created {
		// A slot this relay had backfilled before is gone: dropped by hand,
		// invalidated, or a failover to a server without it. Events committed
		// while it was missing were never decoded; the backfill below
		// publishes every row still pending, so none is lost, but say so.
		if st, err := r.store.SlotState(ctx, slot.Name); err == nil && (st.BackfillDone || slot.Recreated) {
			r.log.Error("replication slot was missing and has been created again; republishing every pending row",
				"slot", slot.Name, "lost_wal", slot.Recreated)
		}
		if err := r.store.SetBackfillDone(ctx, slot.Name, false); err != nil {
			return nil, err
		}
	} else {
		st, err := r.store.SlotState(ctx, slot.Name)
		if err != nil {
			return nil, err
		}
		if st.BackfillDone {
			switch st.Timeline {
			case slot.Timeline:
				return nil, nil
			case 0:
				// Backfilled by a relay that did not record timelines: on
				// this one, as far as anyone can tell.
				return nil, r.store.SetTimeline(ctx, slot.Name, slot.Timeline)
			}
			// A standby was promoted, and this is its synchronized copy of
			// the slot. The copy may already be past events whose processed
			// marks were lost with the old primary (the marks' WAL had not
			// reached the standby when the slot's position had): the slot
			// never streams them again, and their rows are pending here.
			r.log.Warn("the server was promoted since the relay last streamed from this slot; publishing every pending row again, for the processed marks lost with the old primary",
				"slot", slot.Name, "timeline", slot.Timeline, "last_timeline", st.Timeline)
		}
	}
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin backfill: %w", err)
	}
	if slot.SnapshotName != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+slot.SnapshotName+"'"); err != nil {
			_ = tx.Rollback(ctx)
			return nil, fmt.Errorf("import snapshot of slot %q: %w", slot.Name, err)
		}
	} else if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		// A repeatable-read snapshot is taken by the first statement, which
		// would otherwise be the backfill's read, after streaming started:
		// rows committed in between would be published by the backfill ahead
		// of events the stream delivers before them. Taken now, the backfill
		// holds the rows pending when the session began; later ones come from
		// the stream in commit order.
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("begin backfill: %w", err)
	}
	return tx, nil
}

// changeBatches is how many batches of changes the reader may hand over
// before the dispatcher takes them: small transactions come one per batch.
const changeBatches = 16

// pipeline runs the stages of one session, each in its goroutine:
//
//	reader (cdc.Stream.Run) ─changes▶ dispatcher ─acks▶ acker ─▶ status writers
//	                                                              │
//	     stream.Confirm ◀──────────── tracker ◀───── done ────────┘
//
// plus the background services. It returns when ctx ends (after draining)
// or when one of the stages fails.
func (r *Relay) pipeline(ctx context.Context, stream *cdc.Stream, backfill pgx.Tx, catchUpUntil pglogrepl.LSN) error {
	// The one back-edge of the design: once a transaction and every one
	// before it are acked and marked, the tracker hands its end to
	// stream.Confirm, and the next standby status update moves the slot.
	tr := newTracker(stream.Slot().ConfirmedLSN, stream.Confirm)
	// At most changeBatches × cdc.MaxBatch changes wait for the dispatcher.
	changes := make(chan []cdc.Change, changeBatches)
	acks := make(chan inflight, r.opts.PublishWindow)

	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	// The acker outlives ctx on a graceful stop: it drains what was
	// published (bounded by ShutdownTimeout below).
	ackCtx, stopAck := context.WithCancelCause(context.Background())
	defer stopAck(nil)

	failures := &failures{store: r.store, pub: r.pub, maxRetries: r.opts.MaxRetries, m: r.m, log: r.log}
	window := make(chan struct{}, r.opts.PublishWindow)
	parts := stage{pub: r.pub, store: r.store, tr: tr, failures: failures, m: r.m, log: r.log}
	d := &dispatcher{stage: parts, acks: acks, ackerDone: ackCtx.Done(), window: window, catchUpUntil: catchUpUntil,
		coalesce: coalescer{linger: r.opts.PublishLinger}}
	r.publishFailing.Store("")
	a := &acker{stage: parts, flushInterval: r.opts.FlushInterval, window: window, unmarked: &r.unmarked, failing: &r.publishFailing}

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
		stopAck(err)
	}
	wg.Go(func() { fail(stream.Run(readCtx, changes)) })
	wg.Go(func() {
		defer close(acks)
		fail(d.run(readCtx, changes, backfill, stream.Slot()))
	})
	wg.Go(func() { fail(a.run(ackCtx, acks)) })
	wg.Go(func() { r.runServices(readCtx, r.services(tr)) })

	// On a graceful stop the acker drains what was published, bounded in time.
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(r.opts.ShutdownTimeout):
				r.log.Warn("shutdown timeout: leaving unacked events to the next run")
				stopAck(errDrainTimedOut)
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

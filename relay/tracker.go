package relay

import (
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
)

// tracker decides how far the slot may be confirmed. It keeps the
// transactions in stream order with a count of their events not yet acked
// and marked; the confirmed position moves to the end LSN of the last
// transaction such that it and every transaction before it are committed
// (their Commit was seen) and fully done.
//
// Memory grows with the number of transactions in flight, never with their
// size: events are counted, not kept.
type tracker struct {
	mu        sync.Mutex
	txns      []*txn
	confirmed pglogrepl.LSN
	// confirmedAt is the commit time (or keepalive time) of the confirmed
	// position: everything committed before it is delivered and marked.
	confirmedAt time.Time
	onConfirm   func(pglogrepl.LSN)
}

type txn struct {
	remaining int
	committed bool
	end       pglogrepl.LSN
	at        time.Time // commit time; zero for a backfill
	xid       uint32    // the transaction's id; zero for a backfill or keepalive
	onDone    func()    // called once the transaction is confirmed
}

func newTracker(start pglogrepl.LSN, onConfirm func(pglogrepl.LSN)) *tracker {
	return &tracker{confirmed: start, onConfirm: onConfirm}
}

// begin appends a transaction that committed at time at.
//
// A transaction that is committed and done but waits behind an earlier one
// (PostgreSQL 14 sends BEGIN and COMMIT for every transaction of the
// database, keepalives add positions) is taken over by the next one instead:
// its end is confirmed with the next one's, which the wait for the earlier
// transaction holds up anyway. So the tracker keeps at most one entry per
// transaction with unfinished events, plus one, however many empty ones
// pass while a status write is slow.
func (t *tracker) begin(at time.Time) *txn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.txns); n > 0 {
		if tail := t.txns[n-1]; tail.committed && tail.remaining == 0 && tail.onDone == nil {
			tail.committed, tail.xid = false, 0
			if at.After(tail.at) {
				tail.at = at
			}
			return tail
		}
	}
	x := &txn{at: at}
	t.txns = append(t.txns, x)
	return x
}

// add counts one more event in x.
func (t *tracker) add(x *txn) {
	t.mu.Lock()
	x.remaining++
	t.mu.Unlock()
}

// done counts one event of x as acked and marked (or marked failed).
func (t *tracker) done(x *txn) {
	t.mu.Lock()
	x.remaining--
	t.advanceLocked()
}

// commit records that x has no more events and ends at end. An end of zero
// (a backfill) confirms nothing by itself.
func (t *tracker) commit(x *txn, end pglogrepl.LSN) {
	t.mu.Lock()
	x.committed = true
	x.end = end
	t.advanceLocked()
}

// advanceLocked pops finished transactions from the front and unlocks t.mu
// before calling back, so callbacks may take their time.
func (t *tracker) advanceLocked() {
	var callbacks []func()
	moved := false
	for len(t.txns) > 0 {
		x := t.txns[0]
		if !x.committed || x.remaining > 0 {
			break
		}
		t.txns[0] = nil
		t.txns = t.txns[1:]
		if x.end > t.confirmed {
			t.confirmed = x.end
			moved = true
		}
		if x.at.After(t.confirmedAt) {
			t.confirmedAt = x.at
		}
		if x.onDone != nil {
			callbacks = append(callbacks, x.onDone)
		}
	}
	confirmed := t.confirmed
	t.mu.Unlock()
	for _, f := range callbacks {
		f()
	}
	if moved && t.onConfirm != nil {
		t.onConfirm(confirmed)
	}
}

// confirmedTime returns the time up to which every commit is done.
func (t *tracker) confirmedTime() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.confirmedAt
}

// confirmedLSN returns the confirmed position.
func (t *tracker) confirmedLSN() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return uint64(t.confirmed)
}

// inFlight returns the number of transactions not yet confirmed.
func (t *tracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.txns)
}

package relay

import (
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/assert"
)

func TestTrackerConfirmsOnlyFinishedPrefix(t *testing.T) {
	var confirmed []pglogrepl.LSN
	tr := newTracker(100, func(l pglogrepl.LSN) { confirmed = append(confirmed, l) })

	a := tr.begin(time.Time{})
	tr.add(a)
	tr.add(a)
	b := tr.begin(time.Time{})
	tr.add(b)
	tr.commit(a, 200)
	tr.commit(b, 300)
	assert.Empty(t, confirmed, "nothing done yet")

	tr.done(b)
	assert.Empty(t, confirmed, "b is done but a, before it, is not")

	tr.done(a)
	assert.Empty(t, confirmed, "a still has one event")
	tr.done(a)
	assert.Equal(t, []pglogrepl.LSN{300}, confirmed, "a and b confirmed together, at b's end")
	assert.Equal(t, 0, tr.inFlight())
}

func TestTrackerWaitsForCommit(t *testing.T) {
	var got pglogrepl.LSN
	tr := newTracker(10, func(l pglogrepl.LSN) { got = l })
	x := tr.begin(time.Time{})
	tr.add(x)
	tr.done(x)
	assert.Zero(t, got, "all events done but the Commit has not been seen: more may come")
	tr.commit(x, 50)
	assert.Equal(t, pglogrepl.LSN(50), got)
}

func TestTrackerEmptyTransactionsAndPositions(t *testing.T) {
	var got pglogrepl.LSN
	tr := newTracker(10, func(l pglogrepl.LSN) { got = l })
	busy := tr.begin(time.Time{})
	tr.add(busy)
	tr.commit(busy, 40)
	tr.commit(tr.begin(time.Time{}), 60) // a keepalive position behind a busy transaction
	assert.Zero(t, got)
	tr.done(busy)
	assert.Equal(t, pglogrepl.LSN(60), got)
}

func TestTrackerNeverMovesBackwards(t *testing.T) {
	var calls int
	tr := newTracker(500, func(pglogrepl.LSN) { calls++ })
	tr.commit(tr.begin(time.Time{}), 0)   // a backfill: no LSN
	tr.commit(tr.begin(time.Time{}), 400) // a position older than the start
	assert.Zero(t, calls)
	assert.Equal(t, pglogrepl.LSN(500), tr.confirmed)
}

func TestTrackerRunsOnDoneOnce(t *testing.T) {
	tr := newTracker(0, nil)
	x := tr.begin(time.Time{})
	runs := 0
	x.onDone = func() { runs++ }
	tr.add(x)
	tr.commit(x, 0)
	assert.Zero(t, runs)
	tr.done(x)
	tr.commit(tr.begin(time.Time{}), 10)
	assert.Equal(t, 1, runs)
}

func TestTrackerConfirmedTime(t *testing.T) {
	tr := newTracker(0, nil)
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a := tr.begin(t0)
	tr.add(a)
	tr.commit(a, 10)
	tr.commit(tr.begin(t0.Add(time.Minute)), 20)
	assert.True(t, tr.confirmedTime().IsZero(), "nothing confirmed yet")
	tr.done(a)
	assert.Equal(t, t0.Add(time.Minute), tr.confirmedTime())
}

// Empty transactions and keepalive positions behind a busy transaction do
// not pile up: each takes over the one before it, and the position is the
// last one's once the busy transaction is done.
func TestTrackerKeepsOneEntryForEmptyTransactionsBehindABusyOne(t *testing.T) {
	var got pglogrepl.LSN
	tr := newTracker(10, func(l pglogrepl.LSN) { got = l })
	busy := tr.begin(time.Time{})
	tr.add(busy)
	tr.commit(busy, 20)
	for i := range 10000 {
		tr.commit(tr.begin(time.Time{}), pglogrepl.LSN(30+i))
	}
	assert.Equal(t, 2, tr.inFlight(), "the busy transaction and one for all that followed")
	late := tr.begin(time.Time{}) // a transaction with an event, after them
	tr.add(late)
	tr.commit(late, 20000)
	assert.Equal(t, 2, tr.inFlight())
	tr.done(busy)
	assert.Equal(t, pglogrepl.LSN(20), got, "the busy one's end; the empty ones were taken over by one not done yet")
	tr.done(late)
	assert.Equal(t, pglogrepl.LSN(20000), got)
	assert.Zero(t, tr.inFlight())
}

package verify

import (
	"fmt"
	"time"
)

// DefaultWindow is how far before its end (Until, or now) the window starts
// when Options.Since is not given. A power loss loses the acks of the last sync_interval (2 minutes by
// default) before it, so a verification run within a day of the broker's
// return covers them; it is the 24 h of eventbus status, and it keeps a
// default run from reading unbounded history.
const DefaultWindow = 24 * time.Hour

// Margin is how much earlier than the window the stream is read, and how
// much of the stream's max_age the window keeps clear of.
//
// A message is stored after its row's transaction started (created_at is
// that start), so a message of the window is never stored before Since by
// one clock. But created_at is Postgres's clock and a message's time the
// NATS server's: Margin covers the skew between two hosts (milliseconds
// under NTP; minutes where it is broken), at the price of reading a few
// minutes of messages more. There is no margin at the other end: a message
// can be stored any time after its row was created (a backlog, an outage),
// so the stream is read to its end.
const Margin = 5 * time.Minute

// window is what one verification reads: the processed rows created in
// [since, until), and the stream from streamFrom to its end.
type window struct {
	since, until, streamFrom time.Time
	// notes say where the window differs from what was asked.
	notes []string
}

// plan returns the window for since and until (zero: not given) at now, on a
// stream that keeps messages for maxAge (0: no age limit).
//
// A stream with max_age drops a message maxAge after storing it. An event
// created at c is stored at c or later, so it is still there until
// c + maxAge: the window starts no earlier than now - maxAge + Margin, or it
// would report events retention removed, as lost, and --repair would
// publish them again. Margin leaves the verification that long to reach the
// oldest messages, clock skew included.
func plan(since, until, now time.Time, maxAge time.Duration) window {
	w := window{since: since, until: until}
	if w.until.IsZero() {
		w.until = now
	}
	if w.since.IsZero() {
		w.since = w.until.Add(-DefaultWindow)
	}
	if maxAge > 0 {
		if kept := now.Add(-maxAge + Margin); w.since.Before(kept) {
			w.notes = append(w.notes, fmt.Sprintf(
				"the window starts at %s, not %s: the stream keeps messages for %s (max_age), so older events may have left it by retention",
				kept.UTC().Format(time.RFC3339), w.since.UTC().Format(time.RFC3339), maxAge))
			w.since = kept
		}
	}
	if !w.until.After(w.since) {
		w.until = w.since
	}
	w.streamFrom = w.since.Add(-Margin)
	return w
}

// empty reports whether no event can be in the window.
func (w window) empty() bool { return !w.until.After(w.since) }

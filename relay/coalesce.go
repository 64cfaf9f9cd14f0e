package relay

import "time"

// Under load the dispatcher holds the changes it receives for a moment to
// gather the ones right behind them, so that their publishes reach the NATS
// socket together: nats.go's flusher writes whatever has accumulated when it
// wakes, and a stream of single-row transactions published one by one makes
// it, the server's read loop, its stream and the relay's PubAck reads wake
// once per event. Only above busyBatchesPerWindow batches per rateWindow
// (3,000 batches a second; a small transaction is one batch) does it hold
// anything: below that rate every change is published the moment it arrives,
// and at it the machine is busy enough that a millisecond more is not what
// anyone's latency is made of (docs/BENCHMARKS.md, issue 13).
const (
	rateWindow           = 10 * time.Millisecond
	busyBatchesPerWindow = 30
	// maxCoalesced ends a gathering early: about 85 single-row transactions.
	maxCoalesced = 256
)

// coalescer counts the batches of changes the dispatcher receives and says
// when to hold them. It is the dispatcher's alone.
type coalescer struct {
	// linger is the longest a batch is held; 0 never holds.
	linger time.Duration

	windowStart          time.Time
	inWindow, lastWindow int
}

// arrived counts a batch received at now.
func (c *coalescer) arrived(now time.Time) {
	if c.linger <= 0 {
		return
	}
	if since := now.Sub(c.windowStart); since >= rateWindow {
		c.lastWindow = c.inWindow
		if since >= 2*rateWindow { // a quiet window in between
			c.lastWindow = 0
		}
		c.windowStart, c.inWindow = now, 0
	}
	c.inWindow++
}

// busy reports whether the batch just counted should be held: the stream
// ran at the busy rate in the last window or does in this one.
func (c *coalescer) busy() bool {
	return c.linger > 0 && max(c.lastWindow, c.inWindow) >= busyBatchesPerWindow
}

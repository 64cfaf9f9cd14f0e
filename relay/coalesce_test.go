package relay

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// feed counts n batches every gap from start and returns how many of them
// busy held, and the time after the last.
func feed(c *coalescer, start time.Time, n int, gap time.Duration) (held int, end time.Time) {
	now := start
	for range n {
		c.arrived(now)
		if c.busy() {
			held++
		}
		now = now.Add(gap)
	}
	return held, now
}

func TestCoalescerHoldsOnlyAboveTheBusyRate(t *testing.T) {
	start := time.Unix(1_000_000, 0)

	c := &coalescer{linger: time.Millisecond}
	held, _ := feed(c, start, 10_000, time.Second/2000)
	assert.Zero(t, held, "2,000 batches/s: nothing held")

	c = &coalescer{linger: time.Millisecond}
	held, end := feed(c, start, 10_000, time.Second/8000)
	// The first window's batches up to the 30th go at once.
	assert.Equal(t, 10_000-(busyBatchesPerWindow-1), held, "8,000 batches/s: held from the 30th on")

	// After a pause the rate is measured afresh.
	held, _ = feed(c, end.Add(time.Second), busyBatchesPerWindow-1, time.Second/8000)
	assert.Zero(t, held, "the first batches after a pause go at once")

	c = &coalescer{}
	held, _ = feed(c, start, 10_000, time.Second/8000)
	assert.Zero(t, held, "linger 0 never holds")
}

func TestCoalescerForgetsAQuietWindow(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	c := &coalescer{linger: time.Millisecond}
	_, end := feed(c, start, 100, time.Second/8000)
	// One batch 25 ms later: the window before it was quiet.
	c.arrived(end.Add(25 * time.Millisecond))
	assert.False(t, c.busy())
}

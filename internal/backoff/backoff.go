// Package backoff is the capped exponential backoff with jitter of every
// loop that talks to the network (the relay's stages, the webhook
// deliverer), and a sleep that ends with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff doubles its wait from base up to cap; each wait is drawn from the
// upper half of the current step (jitter, so that clients failing together
// do not retry together).
type Backoff struct {
	base, cap, cur time.Duration
}

// New returns a Backoff from base to cap.
func New(base, cap time.Duration) *Backoff { return &Backoff{base: base, cap: cap} }

// Next returns the next wait.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur = min(b.cur*2, b.cap)
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

// Reset starts again from base.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d or until ctx ends, whichever is first, and reports whether
// the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

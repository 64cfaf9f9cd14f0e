package relay

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestInProcessWatchStepsDownOnlyForAnEventHeldPastPatience(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var w inProcessWatch

	// One event answered "in process" again and again, as the acker's
	// backoff sends it: no step-down before inProcessPatience.
	for _, d := range []time.Duration{0, 100 * time.Millisecond, time.Second, 5 * time.Second, inProcessPatience - time.Millisecond} {
		assert.False(t, w.stepDown("a", at(d)), "at %s", d)
	}
	assert.True(t, w.stepDown("a", at(inProcessPatience)), "held for the patience")
	assert.Equal(t, inProcessPatience, w.held(at(inProcessPatience)))
	// Still held: the next step-down waits stepDownEvery.
	assert.False(t, w.stepDown("a", at(inProcessPatience+5*time.Second)))
	assert.False(t, w.stepDown("a", at(inProcessPatience+stepDownEvery-time.Millisecond)))
	assert.True(t, w.stepDown("a", at(inProcessPatience+stepDownEvery)))

	// Another event starts its own patience, and the interval since the
	// last step-down still holds.
	start := inProcessPatience + stepDownEvery
	assert.False(t, w.stepDown("b", at(start+time.Second)))
	assert.False(t, w.stepDown("b", at(start+time.Second+inProcessPatience)), "a step-down %s ago", inProcessPatience+time.Second)
	assert.True(t, w.stepDown("b", at(start+stepDownEvery)))

	// An ack forgets the event: the same id answered again starts over.
	w.reset()
	later := start + 2*stepDownEvery
	assert.False(t, w.stepDown("b", at(later)))
	assert.False(t, w.stepDown("b", at(later+inProcessPatience-time.Millisecond)))
	assert.True(t, w.stepDown("b", at(later+inProcessPatience)))
}

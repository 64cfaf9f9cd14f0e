package periodic

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunCallsEveryIntervalUntilTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var calls []time.Time
	started := time.Now()
	Run(ctx, 5*time.Millisecond, false, func(context.Context) {
		calls = append(calls, time.Now())
		if len(calls) == 3 {
			cancel()
		}
	})
	assert.Len(t, calls, 3)
	assert.GreaterOrEqual(t, calls[0].Sub(started), 5*time.Millisecond, "first call after one interval")
}

func TestRunImmediatelyCallsAtOnce(t *testing.T) {
	// With an hour's interval, only the immediate call can happen before
	// the 10 s bound ends the run.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	calls := 0
	Run(ctx, time.Hour, true, func(context.Context) {
		calls++
		cancel()
	})
	assert.Equal(t, 1, calls)
}

func TestRunDoesNotCallAfterTheContextEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	Run(ctx, time.Millisecond, true, func(context.Context) { t.Error("called after the context ended") })
}

package metrics

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricsAckedObservesLatencies(t *testing.T) {
	reg := prometheus.NewPedanticRegistry() // checks each metric's consistency on Gather
	m := NewRelay(reg)
	now := time.Now()

	m.Acked(now.Add(-20*time.Millisecond), now.Add(-3*time.Second), now)
	// Backfilled or redriven: no commit time, so no end-to-end latency.
	m.Acked(now.Add(-10*time.Millisecond), time.Time{}, now)
	// The database's clock ahead of the relay's: counted as no latency.
	m.Acked(now, now.Add(time.Second), now)

	count, sum := histogram(t, reg, "eventbus_event_latency_seconds")
	assert.Equal(t, uint64(2), count, "latency samples")
	assert.InDelta(t, 3.0, sum, 1e-9, "latency sum")
	count, sum = histogram(t, reg, "eventbus_publish_duration_seconds")
	assert.Equal(t, uint64(3), count, "publish duration samples")
	assert.InDelta(t, 0.03, sum, 1e-9, "publish duration sum")
}

// histogram returns the sample count and sum of the histogram name in reg.
func histogram(t *testing.T, reg prometheus.Gatherer, name string) (count uint64, sum float64) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			require.Len(t, mf.GetMetric(), 1, name)
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("histogram %s not registered", name)
	return 0, 0
}

func TestCachedServesOneLoadPerTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	var loads atomic.Int32
	c := newCached(time.Second, func(ctx context.Context) (int32, error) {
		_, ok := ctx.Deadline()
		assert.True(t, ok, "the load has a deadline")
		return loads.Add(1), nil
	})
	c.now = func() time.Time { return now }

	v, err := c.get()
	require.NoError(t, err)
	assert.Equal(t, int32(1), v)
	now = now.Add(999 * time.Millisecond)
	v, _ = c.get()
	assert.Equal(t, int32(1), v, "within the TTL the cached value is served")
	now = now.Add(time.Millisecond)
	v, _ = c.get()
	assert.Equal(t, int32(2), v, "after the TTL the value is loaded again")
}

func TestCachedKeepsErrorsAndSharesALoad(t *testing.T) {
	boom := errors.New("database down")
	var loads atomic.Int32
	release := make(chan struct{})
	c := newCached(time.Hour, func(context.Context) (int, error) {
		loads.Add(1)
		<-release
		return 0, boom
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := c.get()
			assert.ErrorIs(t, err, boom)
		})
	}
	close(release)
	wg.Wait()
	_, err := c.get()
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, int32(1), loads.Load(), "concurrent and later callers share one failed load")
}

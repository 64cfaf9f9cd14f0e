package procs

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPolicy(t *testing.T) {
	quiet := sample{cores: 0.1, waits: 1000}
	busy := sample{cores: 0.9, waits: 1000}
	steady := sample{cores: 0.5, waits: 1000} // between the two thresholds
	starved := sample{cores: 0.3, waits: 1000, starved: 60}
	someStarved := sample{cores: 0.1, waits: 1000, starved: 10}

	t.Run("lowers after quietSamples quiet samples in a row", func(t *testing.T) {
		p := policy{max: 4}
		for i := 1; i < quietSamples; i++ {
			require.Equal(t, 4, p.next(4, quiet), "sample %d", i)
		}
		assert.Equal(t, 1, p.next(4, quiet))
	})
	t.Run("a sample that is not quiet starts the count again", func(t *testing.T) {
		p := policy{max: 4}
		for range quietSamples - 1 {
			require.Equal(t, 4, p.next(4, quiet))
		}
		require.Equal(t, 4, p.next(4, steady))
		for i := 1; i < quietSamples; i++ {
			require.Equal(t, 4, p.next(4, quiet), "sample %d after the steady one", i)
		}
		assert.Equal(t, 1, p.next(4, quiet))
	})
	t.Run("little CPU but starved goroutines is not quiet", func(t *testing.T) {
		p := policy{max: 4}
		for range 3 * quietSamples {
			require.Equal(t, 4, p.next(4, someStarved))
		}
	})
	t.Run("one P stays while the load is below busy", func(t *testing.T) {
		p := policy{max: 4}
		for _, s := range []sample{quiet, steady, someStarved, {}} {
			require.Equal(t, 1, p.next(1, s), "%+v", s)
		}
	})
	t.Run("one P is raised at once when busy", func(t *testing.T) {
		p := policy{max: 4}
		assert.Equal(t, 4, p.next(1, busy))
	})
	t.Run("one P is raised at once when goroutines wait for it", func(t *testing.T) {
		p := policy{max: 4}
		assert.Equal(t, 4, p.next(1, starved))
	})
	t.Run("after a raise it takes quietSamples again to lower", func(t *testing.T) {
		p := policy{max: 4}
		for range quietSamples - 1 {
			p.next(4, quiet)
		}
		require.Equal(t, 4, p.next(1, busy))
		for i := 1; i < quietSamples; i++ {
			require.Equal(t, 4, p.next(4, quiet), "sample %d after the raise", i)
		}
		assert.Equal(t, 1, p.next(4, quiet))
	})
	t.Run("a steady load keeps whatever it has", func(t *testing.T) {
		p := policy{max: 4}
		for range 3 * quietSamples {
			require.Equal(t, 4, p.next(4, steady))
			require.Equal(t, 1, p.next(1, steady))
		}
	})
}

func TestMeterReadsThisProcessesCPU(t *testing.T) {
	m, err := newMeter()
	require.NoError(t, err)
	// Busy on one goroutine for 200 ms of CPU time, then read: at least
	// that much, spread over the wall time since the meter started.
	start, err := processCPU()
	require.NoError(t, err)
	spin(func() bool {
		now, err := processCPU()
		return err == nil && now-start < 200*time.Millisecond
	})
	s, err := m.read()
	require.NoError(t, err)
	assert.Greater(t, s.cores, 0.0)
	assert.NotZero(t, s.waits, "the runtime's scheduling latencies are read")
	// Idle since: next to no CPU. Reading again right away gives a tiny
	// interval, so wait for some wall time first, on a timer.
	<-time.After(100 * time.Millisecond)
	s, err = m.read()
	require.NoError(t, err)
	assert.Less(t, s.cores, 0.5, "an idle process")
}

// TestGovernorLowersWhenIdleAndRaisesUnderLoad runs the governor on this
// test process: idle, it goes to one P; with two goroutines spinning it
// comes back to the default; when it stops, the default is restored.
func TestGovernorLowersWhenIdleAndRaisesUnderLoad(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	if def < 2 {
		t.Skip("GOMAXPROCS is 1 by default here: nothing to adapt")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Governor{Interval: 20 * time.Millisecond}.Run(ctx)
	}()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)

	waitForProcs(t, 1, "an idle process")

	var spinning sync.WaitGroup
	quit := make(chan struct{})
	for range 2 {
		spinning.Go(func() {
			spin(func() bool {
				select {
				case <-quit:
					return false
				default:
					return true
				}
			})
		})
	}
	waitForProcs(t, def, "a process with two goroutines spinning")
	close(quit)
	spinning.Wait()

	waitForProcs(t, 1, "idle again")
	stop()
	assert.Equal(t, def, runtime.GOMAXPROCS(0), "the default is restored when the governor stops")
}

func waitForProcs(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.GOMAXPROCS(0) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GOMAXPROCS is %d after 30 s, want %d", what, runtime.GOMAXPROCS(0), want)
		}
		<-tick.C
	}
}

// spin burns CPU until more returns false.
func spin(more func() bool) {
	x := 0
	for more() {
		for i := range 10000 {
			x += i
		}
	}
	_ = x
}

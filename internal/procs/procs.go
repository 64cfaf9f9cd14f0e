// Package procs fits GOMAXPROCS to the process's load: one P while the
// process needs no more, the runtime's default as soon as it does.
//
// Why: at a low event rate the relay's cost is per wake-up, not per event.
// Each single-row transaction crosses four goroutines (reader, dispatcher,
// nats.go's flusher, acker), and with a second P idle every hand-off wakes
// another thread, which spins looking for work and goes back to sleep: the
// scheduler and its futex calls were a third of the relay's CPU at 2,000
// events/s. With one P a hand-off is a switch on the same thread. One P
// would cap a busy relay at one core, though, so the Governor gives the
// default back when the process uses most of a core, or when its goroutines
// wait for a P (the host is busy and one thread gets too small a share of
// it), and takes it away again only after several quiet samples.
package procs

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/eventbus/eventbus/internal/periodic"
)

// Thresholds of the policy. Busy and quiet are in cores of CPU (user and
// system) per second of wall time; the gap between them keeps a steady load
// from flipping the setting.
const (
	// busyCores raises GOMAXPROCS from one: past it, one thread is close to
	// what it can do.
	busyCores = 0.7
	// quietCores lowers it to one, once quietSamples samples in a row were
	// below it and without starved goroutines.
	quietCores   = 0.4
	quietSamples = 5
	// A goroutine that waited longer than slowWait for a P was starved;
	// starvedShare of the scheduling events (or more) that were starved
	// raise GOMAXPROCS, and a quiet sample has under a tenth of it.
	slowWait     = 2 * time.Millisecond
	starvedShare = 0.05
)

// Governor samples the process's load every Interval and sets GOMAXPROCS
// to 1 or to the runtime's default accordingly.
type Governor struct {
	// Interval between samples; one second when zero.
	Interval time.Duration
	Log      *slog.Logger
}

// sample is the process's load over one interval.
type sample struct {
	cores float64 // CPU seconds per wall second
	// waits counts the scheduling events of goroutines (sampled by the
	// runtime), starved those that waited longer than slowWait for a P.
	waits, starved uint64
}

func (s sample) starvedShare() float64 {
	if s.waits == 0 {
		return 0
	}
	return float64(s.starved) / float64(s.waits)
}

// policy decides the next GOMAXPROCS from the samples, one at a time.
type policy struct {
	max   int // the runtime's default
	quiet int // quiet samples in a row
}

// next returns the GOMAXPROCS to have after s, given the current one.
func (p *policy) next(cur int, s sample) int {
	share := s.starvedShare()
	if cur == 1 {
		p.quiet = 0
		if s.cores > busyCores || share >= starvedShare {
			return p.max
		}
		return 1
	}
	if s.cores < quietCores && share < starvedShare/10 {
		p.quiet++
	} else {
		p.quiet = 0
	}
	if p.quiet >= quietSamples {
		p.quiet = 0
		return 1
	}
	return cur
}

// Run adapts GOMAXPROCS until ctx ends, then gives the runtime its default
// back. It returns at once where the default is already one, or where the
// process's CPU time cannot be read.
func (g Governor) Run(ctx context.Context) {
	interval := g.Interval
	if interval <= 0 {
		interval = time.Second
	}
	log := g.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	runtime.SetDefaultGOMAXPROCS()
	p := policy{max: runtime.GOMAXPROCS(0)}
	if p.max <= 1 {
		return
	}
	meter, err := newMeter()
	if err != nil {
		log.Debug("GOMAXPROCS stays the runtime's default", "reason", err)
		return
	}
	defer runtime.SetDefaultGOMAXPROCS()
	periodic.Run(ctx, interval, false, func(context.Context) {
		s, err := meter.read()
		if err != nil {
			log.Debug("load not sampled", "err", err)
			return
		}
		cur := runtime.GOMAXPROCS(0)
		switch next := p.next(cur, s); {
		case next == cur:
		case next == 1:
			runtime.GOMAXPROCS(1)
			log.Debug("GOMAXPROCS lowered", "to", 1, "cores", s.cores)
		default:
			// The default, not p.max: it follows a changed CPU limit again.
			runtime.SetDefaultGOMAXPROCS()
			p.max = runtime.GOMAXPROCS(0)
			log.Debug("GOMAXPROCS raised", "to", p.max, "cores", s.cores, "starved", s.starvedShare())
		}
	})
}

// meter reads the load since its previous read.
type meter struct {
	cpu      time.Duration
	at       time.Time
	latency  []metrics.Sample
	counts   []uint64
	slowFrom int // the first bucket at or past slowWait
}

const schedLatencies = "/sched/latencies:seconds"

func newMeter() (*meter, error) {
	cpu, err := processCPU()
	if err != nil {
		return nil, err
	}
	m := &meter{cpu: cpu, at: time.Now(), latency: []metrics.Sample{{Name: schedLatencies}}}
	metrics.Read(m.latency)
	if m.latency[0].Value.Kind() == metrics.KindFloat64Histogram {
		h := m.latency[0].Value.Float64Histogram()
		m.counts = append([]uint64(nil), h.Counts...)
		m.slowFrom = len(h.Counts)
		for i := range h.Counts {
			if h.Buckets[i] >= slowWait.Seconds() {
				m.slowFrom = i
				break
			}
		}
	}
	return m, nil
}

func (m *meter) read() (sample, error) {
	cpu, err := processCPU()
	if err != nil {
		return sample{}, err
	}
	now := time.Now()
	var s sample
	if wall := now.Sub(m.at); wall > 0 {
		s.cores = (cpu - m.cpu).Seconds() / wall.Seconds()
	}
	m.cpu, m.at = cpu, now
	if m.counts == nil {
		return s, nil
	}
	metrics.Read(m.latency)
	h := m.latency[0].Value.Float64Histogram()
	for i, c := range h.Counts {
		d := c - m.counts[i]
		s.waits += d
		if i >= m.slowFrom {
			s.starved += d
		}
		m.counts[i] = c
	}
	return s, nil
}

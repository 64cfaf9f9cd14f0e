package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// insertTimedSQL stamps each event with the writer's clock_timestamp() in
// unix microseconds. It is read before the commit, so the measured latency
// includes the commit itself (a WAL flush with synchronous_commit on).
const insertTimedSQL = `SELECT public.publish_event('bench.latency', 'bench', $1,
  jsonb_build_object('t', (extract(epoch from clock_timestamp()) * 1e6)::bigint))`

// latencyResult is one design at one target rate in one run. Latencies are
// in milliseconds.
type latencyResult struct {
	Events     int64   `json:"events"`
	TargetRate float64 `json:"target_per_s"`
	Achieved   float64 `json:"achieved_per_s"`
	Dropped    int64   `json:"dropped_tokens"` // pacer tokens the writers were too slow to take
	Held       bool    `json:"held"`
	P50        float64 `json:"p50_ms"`
	P95        float64 `json:"p95_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
	// The writers' own round trip (statement and commit) at p99: the part
	// of the latency that is Postgres's commit, whatever delivers.
	TxnP99 float64 `json:"txn_p99_ms"`
	// CPU per event, writers' start to the last row marked.
	CPU cpuCost `json:"cpu_us_per_event,omitzero"`
}

// latencyWarmup is the start of every measurement whose events are delivered
// and counted but left out of the percentiles: right after the relay starts
// or the table is truncated the first events meet cold caches and fresh
// connections (tens of ms here), which would otherwise weigh on the p99 of a
// 30 s measurement. Shorter measurements leave out their first tenth.
const latencyWarmup = time.Second

// heldShare is how close to the target the writers must come for the rate to
// count as held; below it the latencies belong to a lower rate than the label.
const heldShare = 0.95

// latencyScenario measures commit → received latency at each target rate,
// first through the polling baseline (batch 1000, at its own rates, before
// the relay's slot exists), then through the relay.
func latencyScenario(ctx context.Context, e *env, o options, rep *report) error {
	if err := ensureBaselineStream(ctx, e.js); err != nil {
		return err
	}
	err := pacedChildren(ctx, e, o, rep, "baseline-1000", baselineStream,
		func() (*child, error) { return startPoller(ctx, e, 1000) }, pollerDeliverer)
	if err != nil {
		return err
	}
	if len(o.rates) == 0 {
		return nil
	}

	if err := truncate(ctx, e.pool); err != nil {
		return err
	}
	r, err := startRelay(ctx, e)
	if err != nil {
		return err
	}
	for _, rate := range o.rates {
		res, err := paced(ctx, e, o, relayStream, rate, relayDeliverer(r))
		if err == nil {
			err = truncate(ctx, e.pool)
		}
		if err != nil {
			_ = r.stop()
			return fmt.Errorf("relay at %g/s: %w", rate, err)
		}
		rep.addLatency("relay", res)
	}
	if err := r.stop(); err != nil {
		return err
	}
	if err := dropSlot(ctx, e); err != nil {
		return err
	}
	return floorLatency(ctx, e, o, rep)
}

// floorLatency runs the floor pipe at the baseline's rates: what handing
// over one transaction at a time costs in the least a relay could do. It
// leaves its rows pending, so it truncates after itself.
func floorLatency(ctx context.Context, e *env, o options, rep *report) error {
	if err := ensureBenchStream(ctx, e.js, floorStream, floorPrefix); err != nil {
		return err
	}
	err := pacedChildren(ctx, e, o, rep, "floor", floorStream, func() (*child, error) { return startFloor(ctx, e) }, floorDeliverer)
	if err != nil {
		return err
	}
	return truncate(ctx, e.pool)
}

// pacedChildren measures, at each of the baseline's rates, a deliverer run
// as a child process (started afresh on an empty table for each rate) that
// delivers to stream, as design.
func pacedChildren(ctx context.Context, e *env, o options, rep *report, design, stream string,
	start func() (*child, error), of func(*child) deliverer) error {
	for _, rate := range o.baselineRates {
		if err := truncate(ctx, e.pool); err != nil {
			return err
		}
		p, err := start()
		if err != nil {
			return fmt.Errorf("%s at %g/s: %w", design, rate, err)
		}
		res, err := paced(ctx, e, o, stream, rate, of(p))
		if err = stopWith(p, err); err != nil {
			return fmt.Errorf("%s at %g/s: %w", design, rate, err)
		}
		rep.addLatency(design, res)
	}
	return nil
}

// paced runs the writers at rate for the latency duration, waits for every
// event on stream and until d has marked every row, and summarises the
// latencies and d's CPU over that time.
func paced(ctx context.Context, e *env, o options, stream string, rate float64, d deliverer) (latencyResult, error) {
	res, _, err := pacedWith(ctx, e, o, stream, rate, d, nil)
	return res, err
}

// pacedWith is paced that also waits for every event to reach also (a
// timed tally kept elsewhere: the webhook receiver's) and summarises its
// latencies, with the same CPU, in the second result.
func pacedWith(ctx context.Context, e *env, o options, stream string, rate float64, d deliverer, also *tally) (latencyResult, latencyResult, error) {
	c, err := startCounter(ctx, e.js, stream, true)
	if err != nil {
		return latencyResult{}, latencyResult{}, err
	}
	defer c.stop()
	var (
		l       load
		dropped int64
		txns    []time.Duration
	)
	cpu, err := e.measureCPU(ctx, d, func() (int64, error) {
		var err error
		if l, dropped, txns, err = writePaced(ctx, e.writers, o.latencyWriters, rate, o.latencyDuration); err != nil {
			return 0, err
		}
		if _, err := c.waitFor(ctx, l.events, o.drainLimit); err != nil {
			return 0, err
		}
		if also != nil {
			if _, err := also.waitFor(ctx, l.events, o.drainLimit); err != nil {
				return 0, err
			}
		}
		return l.events, d.settle(ctx, e.pool)
	})
	if err != nil {
		return latencyResult{}, latencyResult{}, err
	}
	since := l.start.Add(min(latencyWarmup, o.latencyDuration/10))
	summarise := func(to string, lat []time.Duration) latencyResult {
		res := latencyResult{
			Events:     l.events,
			TargetRate: rate,
			Achieved:   l.rate(),
			Dropped:    dropped,
			Held:       l.rate() >= heldShare*rate,
			P50:        ms(percentile(lat, 0.50)),
			P95:        ms(percentile(lat, 0.95)),
			P99:        ms(percentile(lat, 0.99)),
			Max:        ms(percentile(lat, 1)),
			TxnP99:     ms(percentile(txns, 0.99)),
			CPU:        cpu,
		}
		e.log.Info("latency", "to", to, "target/s", rate, "achieved/s", int(res.Achieved), "dropped", dropped,
			"p50_ms", res.P50, "p95_ms", res.P95, "p99_ms", res.P99, "max_ms", res.Max, "txn_p99_ms", res.TxnP99,
			"cpu_us", int(cpu.Total))
		return res
	}
	res := summarise(stream, c.latency(since))
	var alsoRes latencyResult
	if also != nil {
		alsoRes = summarise("webhook", also.latency(since))
	}
	return res, alsoRes, nil
}

// writePaced runs n writers that each take a token from one shared pacer per
// single-row transaction. Like write, it never cancels a transaction, so the
// count of committed events is exact. It also returns the pacer's dropped
// tokens and every transaction's round trip, sorted.
func writePaced(ctx context.Context, pool *pgxpool.Pool, n int, rate float64, d time.Duration) (load, int64, []time.Duration, error) {
	p := newPacer(rate)
	pacerCtx, stopPacer := context.WithCancel(ctx)
	defer stopPacer()
	var (
		events   atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		txns     []time.Duration
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	wg.Go(func() { p.run(pacerCtx, d) })
	for w := range n {
		wg.Go(func() {
			var own []time.Duration
			defer func() {
				mu.Lock()
				txns = append(txns, own...)
				mu.Unlock()
			}()
			for range p.tokens {
				began := time.Now()
				if _, err := pool.Exec(context.WithoutCancel(ctx), insertTimedSQL, fmt.Sprintf("w%d-%d", w, len(own))); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("writer %d: %w", w, err) })
					// A writer that quits must not leave the others paced
					// against a schedule nobody keeps.
					stopPacer()
					return
				}
				own = append(own, time.Since(began))
				events.Add(1)
			}
		})
	}
	wg.Wait()
	end := time.Now()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	slices.Sort(txns)
	return load{events: events.Load(), elapsed: end.Sub(start), start: start, end: end}, p.dropped, txns, firstErr
}

// percentile returns the nearest-rank p-quantile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// One transaction per chunk: the backlog is written as fast as the
	// database takes it, and its shape does not matter to the drain.
	insertChunkSQL = `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload)
SELECT 'bench.backlog', 'bench', $1 || '-' || g, jsonb_build_object('n', g, 'note', 'a benchmark event')
FROM generate_series(1, $2::int) AS g`
	backlogChunk = 10_000

	backfillDoneSQL = `SELECT coalesce(bool_or(backfilled_at IS NOT NULL), false)
FROM public.eventbus_slot_state WHERE slot_name = $1`
)

// backlogResult is one design draining one backlog in one run. The process
// figures are the deliverer's: the relay's, or the baseline poller's.
type backlogResult struct {
	Events       int64   `json:"events"`
	InsertRate   float64 `json:"inserted_per_s"`
	DrainRate    float64 `json:"drain_per_s"`
	DrainSeconds float64 `json:"drain_s"`
	PeakRSS      int64   `json:"peak_rss_bytes,omitempty"`         // VmHWM at the end of the drain
	SampledRSS   int64   `json:"sampled_peak_rss_bytes,omitempty"` // largest VmRSS polled every 100 ms
	CPUSeconds   float64 `json:"cpu_s,omitempty"`                  // user + system, process start to the last row marked
	CPUPercent   float64 `json:"cpu_percent,omitempty"`            // CPUSeconds over the drain's wall time
	// CPU per event of every component, from the instant before the
	// deliverer starts to the last row marked.
	CPU cpuCost `json:"cpu_us_per_event,omitzero"`
	// SpilledBytes is what the slot's walsender spilled to disk decoding
	// the backlog (pg_stat_replication_slots, PostgreSQL 14+; the relay's
	// drains only).
	SpilledBytes int64 `json:"spilled_bytes,omitempty"`
}

// backlogScenario writes o.backlog events with nobody delivering, then
// starts a deliverer and measures how fast it drains them: first the
// polling baseline (batch 1000, no slot exists), then the relay, whose slot
// is created before the backlog so that the backlog is in its stream.
func backlogScenario(ctx context.Context, e *env, o options, rep *report) error {
	return drainBoth(ctx, e, o, rep, backlogShape{writers: o.writers, chunk: backlogChunk})
}

// oneTxnScenario is backlogScenario with the whole backlog inserted by one
// transaction: PostgreSQL decodes it only at its commit, spilling it to disk
// past logical_decoding_work_mem, and the relay must drain it with memory
// bounded by its window, not by the transaction's size.
func oneTxnScenario(ctx context.Context, e *env, o options, rep *report) error {
	return drainBoth(ctx, e, o, rep, backlogShape{writers: 1, chunk: o.backlog, suffix: ", one transaction"})
}

// backlogShape says how a backlog is inserted: by writers, chunk rows per
// transaction; suffix tells its designs apart in the report.
type backlogShape struct {
	writers, chunk int
	suffix         string
}

func drainBoth(ctx context.Context, e *env, o options, rep *report, shape backlogShape) error {
	res, err := baselineBacklog(ctx, e, o, shape)
	if err != nil {
		return fmt.Errorf("baseline-1000: %w", err)
	}
	rep.addBacklog("baseline-1000"+shape.suffix, res)
	if res, err = relayBacklog(ctx, e, o, shape); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	rep.addBacklog("relay"+shape.suffix, res)
	return nil
}

func baselineBacklog(ctx context.Context, e *env, o options, shape backlogShape) (backlogResult, error) {
	if err := truncate(ctx, e.pool); err != nil {
		return backlogResult{}, err
	}
	if err := ensureBaselineStream(ctx, e.js); err != nil {
		return backlogResult{}, err
	}
	if err := purge(ctx, e.js, baselineStream); err != nil {
		return backlogResult{}, err
	}
	l, err := insertBacklog(ctx, e.writers, shape, o.backlog)
	if err != nil {
		return backlogResult{}, err
	}
	res, err := drain(ctx, e, o, l, baselineStream, baselineAppName, func() (*child, error) { return startPoller(ctx, e, 1000) })
	if err != nil {
		return backlogResult{}, err
	}
	logBacklog(e, "baseline-1000"+shape.suffix, res)
	return res, nil
}

func relayBacklog(ctx context.Context, e *env, o options, shape backlogShape) (backlogResult, error) {
	if err := truncate(ctx, e.pool); err != nil {
		return backlogResult{}, err
	}
	if err := createSlot(ctx, e); err != nil {
		return backlogResult{}, err
	}
	if err := purge(ctx, e.js, relayStream); err != nil {
		return backlogResult{}, err
	}
	l, err := insertBacklog(ctx, e.writers, shape, o.backlog)
	if err != nil {
		return backlogResult{}, err
	}
	res, err := drain(ctx, e, o, l, relayStream, relayAppName, func() (*child, error) { return startRelay(ctx, e) })
	if err != nil {
		return backlogResult{}, err
	}
	if res.SpilledBytes, err = spilledBytes(ctx, e); err != nil {
		return backlogResult{}, err
	}
	if err := dropSlot(ctx, e); err != nil {
		return backlogResult{}, err
	}
	logBacklog(e, "relay"+shape.suffix, res)
	return res, nil
}

// drain starts a deliverer (whose pooled connections are named app) on the
// backlog l and measures it until the last row is marked: the drain from its
// start to the last event's arrival on stream, its process's memory and CPU,
// and every component's CPU from the instant before it starts.
func drain(ctx context.Context, e *env, o options, l load, stream, app string, start func() (*child, error)) (backlogResult, error) {
	c, err := startCounter(ctx, e.js, stream, false)
	if err != nil {
		return backlogResult{}, err
	}
	defer c.stop()

	before, err := e.cpu.sample(ctx, deliverer{appName: app})
	if err != nil {
		return backlogResult{}, err
	}
	p, err := start()
	if err != nil {
		return backlogResult{}, err
	}
	proc := procStat{pid: p.pid()}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		sampled int64
	)
	wg.Go(func() { sampled = proc.samplePeakRSS(sampleCtx) })
	last, err := c.waitFor(ctx, l.events, backlogLimit(o))
	if err == nil {
		err = settle(ctx, e.pool)
	}
	// Read before the deliverer stops: its /proc entry goes with it.
	var (
		after          cpuSample
		hwm            int64
		cpuErr, rssErr error
	)
	if err == nil {
		after, cpuErr = e.cpu.sample(ctx, deliverer{pid: p.pid(), appName: app})
		_, hwm, rssErr = proc.rss()
	}
	stopSampling()
	wg.Wait()
	if err := stopWith(p, errors.Join(err, cpuErr, rssErr)); err != nil {
		return backlogResult{}, err
	}

	res := drained(l, p.started, last)
	res.PeakRSS, res.SampledRSS = hwm, sampled
	res.CPUSeconds = (after.deliverer - before.deliverer).Seconds()
	if res.DrainSeconds > 0 {
		res.CPUPercent = 100 * res.CPUSeconds / res.DrainSeconds
	}
	res.CPU = costOf(before, after, l.events)
	return res, nil
}

func logBacklog(e *env, design string, res backlogResult) {
	e.log.Info("backlog", "design", design, "events", res.Events, "drain/s", int(res.DrainRate),
		"drain_s", fmt.Sprintf("%.2f", res.DrainSeconds), "peak_rss_mib", res.PeakRSS>>20,
		"cpu_s", fmt.Sprintf("%.2f", res.CPUSeconds), "cpu_pct", int(res.CPUPercent), "cpu_us", int(res.CPU.Total))
}

// createSlot starts the relay once so that it creates its slot and finishes
// the (empty) backfill, and stops it: the backlog written next is then in the
// slot's stream, as after a relay outage, and not read by a backfill.
func createSlot(ctx context.Context, e *env) error {
	r, err := startRelay(ctx, e)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var done bool
		if err := e.pool.QueryRow(ctx, backfillDoneSQL, relaySlot).Scan(&done); err != nil {
			_ = r.stop()
			return fmt.Errorf("backfill state: %w", err)
		}
		if done {
			return r.stop()
		}
		if time.Now().After(deadline) {
			_ = r.stop()
			return errors.New("the relay's backfill of an empty table did not finish within 30s")
		}
		select {
		case <-ctx.Done():
			_ = r.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// insertBacklog writes n events in chunks of shape.chunk rows, one
// transaction each, over shape.writers connections.
func insertBacklog(ctx context.Context, pool *pgxpool.Pool, shape backlogShape, n int) (load, error) {
	chunk := int64(shape.chunk)
	var (
		next     atomic.Int64 // rows handed out so far
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	for i := range shape.writers {
		wg.Go(func() {
			for ctx.Err() == nil {
				from := next.Add(chunk) - chunk
				if from >= int64(n) {
					return
				}
				rows := min(chunk, int64(n)-from)
				if _, err := pool.Exec(ctx, insertChunkSQL, fmt.Sprintf("b%d-%d", i, from), rows); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("backlog writer %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr == nil {
		// Statistics taken before the insert make the baseline's claim
		// expect a handful of pending rows, and it sorts the whole backlog
		// on every call (~0.2 s per claim at 200k rows) until autovacuum
		// analyses the table; a database in production would have fresh
		// statistics, so both designs start with them.
		if _, err := pool.Exec(ctx, "ANALYZE public.event_bus"); err != nil {
			firstErr = fmt.Errorf("analyze event_bus: %w", err)
		}
	}
	return load{events: int64(n), elapsed: end.Sub(start), start: start, end: end}, firstErr
}

// drained summarises a backlog of l.events delivered between start and the
// arrival of its last event.
func drained(l load, start, last time.Time) backlogResult {
	d := last.Sub(start).Seconds()
	res := backlogResult{Events: l.events, InsertRate: l.rate(), DrainSeconds: d}
	if d > 0 {
		res.DrainRate = float64(l.events) / d
	}
	return res
}

// backlogLimit is the longest wait for a backlog: the drain limit plus a
// second per thousand events, so that only a stalled deliverer trips it.
func backlogLimit(o options) time.Duration {
	return o.drainLimit + time.Duration(o.backlog/1000)*time.Second
}

// purge empties a stream, so that backlogs of a million messages per run do
// not pile up in the store.
func purge(ctx context.Context, js jetstream.JetStream, name string) error {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	if err := s.Purge(ctx); err != nil {
		return fmt.Errorf("purge stream %s: %w", name, err)
	}
	return nil
}

// spilledBytes reads how much the relay's slot has spilled to disk since it
// was created (0 before PostgreSQL 14, which has no such view).
func spilledBytes(ctx context.Context, e *env) (int64, error) {
	var n int64
	err := e.pool.QueryRow(ctx, `SELECT coalesce((SELECT spill_bytes FROM pg_stat_replication_slots WHERE slot_name = $1), 0)
WHERE current_setting('server_version_num')::int >= 140000`, relaySlot).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spilled bytes of slot %s: %w", relaySlot, err)
	}
	return n, nil
}

package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// shape is how writers group events into transactions.
type shape string

const (
	single  shape = "single"  // one publish_event call per transaction
	trigger shape = "trigger" // one lead insert per transaction, published by its trigger
	batch   shape = "batch"   // 100 rows per INSERT … SELECT transaction
)

var shapes = []shape{single, trigger, batch}

const (
	// The application's path: one event per transaction through the SQL API.
	insertSingleSQL = `SELECT public.publish_event('bench.created', 'bench', $1, '{"n": 1, "note": "a benchmark event"}'::jsonb)`
	// The application's other path: it writes its own table and the
	// on_lead_created trigger calls publish_event in the same transaction.
	// A lead belongs to an organization, so its event carries one (and the
	// relay its Eventbus-Organization-Id header), as in production.
	insertLeadSQL = `INSERT INTO public.leads (first_name, last_name, phone, organization_id)
VALUES ('Bench', $1, '+15550100', '00000000-0000-4000-8000-00000000be4c')`
	// Bulk work: 100 rows per statement, straight into the table.
	insertBatchSQL = `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload)
SELECT 'bench.created', 'bench', $1 || '-' || g, jsonb_build_object('n', g, 'note', 'a benchmark event')
FROM generate_series(1, 100) AS g`
)

// statement returns what one transaction of shape s executes (its only
// parameter is a unique key) and how many events it commits.
func (s shape) statement() (sql string, events int64) {
	switch s {
	case trigger:
		return insertLeadSQL, 1
	case batch:
		return insertBatchSQL, 100
	default:
		return insertSingleSQL, 1
	}
}

// load is the outcome of the writers of one scenario.
type load struct {
	events  int64         // committed events
	elapsed time.Duration // first start to last writer done
	start   time.Time
	end     time.Time
}

func (l load) rate() float64 { return float64(l.events) / l.elapsed.Seconds() }

// write runs n writers inserting events of shape s until d has passed. The
// writers stop between transactions (never by cancelling one), so events
// counts exactly the committed events.
func write(ctx context.Context, pool *pgxpool.Pool, n int, s shape, d time.Duration) (load, error) {
	var (
		events   atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	deadline := start.Add(d)
	sql, perTxn := s.statement()
	for w := range n {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				if _, err := pool.Exec(context.WithoutCancel(ctx), sql, fmt.Sprintf("w%d-%d", w, i)); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("writer %d: %w", w, err) })
					return
				}
				events.Add(perTxn)
			}
		})
	}
	wg.Wait()
	end := time.Now()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return load{events: events.Load(), elapsed: end.Sub(start), start: start, end: end}, firstErr
}

// truncate empties the event table (and the leads the trigger shape wrote)
// so that every measurement starts alike.
func truncate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, "TRUNCATE public.event_bus, public.leads"); err != nil {
		return fmt.Errorf("truncate event_bus, leads: %w", err)
	}
	return nil
}

// sourceScenario measures the writers alone: no relay, no slot.
func sourceScenario(ctx context.Context, e *env, o options, s shape) (measurement, error) {
	if err := truncate(ctx, e.pool); err != nil {
		return measurement{}, err
	}
	var l load
	cpu, err := e.measureCPU(ctx, deliverer{}, func() (int64, error) {
		var err error
		l, err = write(ctx, e.writers, o.writers, s, o.duration)
		return l.events, err
	})
	if err != nil {
		return measurement{}, err
	}
	e.log.Info("source", "shape", s, "events", l.events, "events/s", int(l.rate()), "other_postgres_us", int(cpu.OtherPG))
	return measurement{Events: l.events, WriteRate: l.rate(), CPU: cpu}, nil
}

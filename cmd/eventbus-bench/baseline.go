package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/publisher"
)

// The baseline publishes to a stream of its own, so that it never mixes with
// the relay's.
const (
	baselineStream  = "EVENTBUS_BENCH_BASELINE"
	baselinePrefix  = "bench-baseline"
	baselineIdle    = 100 * time.Millisecond // the seed's poll interval
	claimPendingSQL = `SELECT id::text, event_type, aggregate_type, aggregate_id, organization_id::text,
  coalesce(payload, '{}')::text, coalesce(metadata, '{}')::text, created_at
FROM public.event_bus
WHERE status = 'pending'
ORDER BY created_at
LIMIT $1
FOR UPDATE SKIP LOCKED`
	markProcessedSQL = `UPDATE public.event_bus SET status = 'processed', processed_at = now() WHERE id = ANY($1::uuid[])`
)

// baselineScenario runs the writers of shape s with the polling reference
// delivering, batch rows per claim, and measures delivery and drain time.
func baselineScenario(ctx context.Context, e *env, o options, s shape, batch int) (measurement, error) {
	if err := truncate(ctx, e.pool); err != nil {
		return measurement{}, err
	}
	if err := ensureBaselineStream(ctx, e.js); err != nil {
		return measurement{}, err
	}
	c, err := startCounter(ctx, e.js, baselineStream, false)
	if err != nil {
		return measurement{}, err
	}
	defer c.stop()

	p, err := startPoller(ctx, e, batch)
	if err != nil {
		return measurement{}, err
	}
	var (
		l    load
		last time.Time
	)
	d := pollerDeliverer(p)
	cpu, err := e.measureCPU(ctx, d, writeAndDrain(ctx, e, o, s, c, d, &l, &last))
	if err = stopWith(p, err); err != nil {
		return measurement{}, err
	}
	m := deliveryOf(l, last)
	m.CPU = cpu
	e.log.Info("baseline", "batch", batch, "shape", s, "events", l.events, "written/s", int(m.WriteRate),
		"delivered/s", int(m.DeliveryRate), "drain_s", fmt.Sprintf("%.2f", m.DrainSeconds), "cpu_us", int(cpu.Total))
	return m, nil
}

func ensureBaselineStream(ctx context.Context, js jetstream.JetStream) error {
	return ensureBenchStream(ctx, js, baselineStream, baselinePrefix)
}

// ensureBenchStream creates or updates one of the bench's own streams: file
// storage over prefix.>, everything else JetStream's defaults.
func ensureBenchStream(ctx context.Context, js jetstream.JetStream, name, prefix string) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{prefix + ".>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return nil
}

// poll is the seed's poller: claim up to batch pending rows, publish them,
// mark them processed; again at once after a full batch, else after
// baselineIdle. It returns when ctx ends, or on the first error.
func poll(ctx context.Context, pool *pgxpool.Pool, js jetstream.JetStream, batch int) error {
	for {
		n, err := pollOnce(ctx, pool, js, batch)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if n == batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(baselineIdle):
		}
	}
}

// pollOnce handles one batch in one transaction: the row locks keep other
// pollers off the rows until they are marked.
func pollOnce(ctx context.Context, pool *pgxpool.Pool, js jetstream.JetStream, batch int) (int, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// Planned at every call (no cached statement): a plan cached while the
	// table was still empty (a sequential scan and a sort) would stay in use
	// as the table grows, and every claim would read the whole table.
	rows, err := tx.Query(ctx, claimPendingSQL, pgx.QueryExecModeExec, batch)
	if err != nil {
		return 0, fmt.Errorf("claim: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (event.Event, error) {
		var ev event.Event
		var org *string
		err := row.Scan(&ev.ID, &ev.EventType, &ev.AggregateType, &ev.AggregateID, &org, &ev.Payload, &ev.Metadata, &ev.CreatedAt)
		if org != nil {
			ev.OrganizationID = *org
		}
		return ev, err
	})
	if err != nil {
		return 0, fmt.Errorf("claim: %w", err)
	}
	if len(events) == 0 {
		return 0, nil
	}

	ids := make([]string, len(events))
	acks := make([]jetstream.PubAckFuture, len(events))
	for i := range events {
		ev := &events[i]
		// The relay's own message builder: both designs pay the same encoding.
		msg, err := publisher.BuildMessage(baselinePrefix, ev)
		if err != nil {
			return 0, err
		}
		if acks[i], err = js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.ID)); err != nil {
			return 0, fmt.Errorf("publish: %w", err)
		}
		ids[i] = ev.ID
	}
	for _, a := range acks {
		select {
		case <-a.Ok():
		case err := <-a.Err():
			return 0, fmt.Errorf("publish ack: %w", err)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if _, err := tx.Exec(ctx, markProcessedSQL, pgx.QueryExecModeExec, ids); err != nil {
		return 0, fmt.Errorf("mark processed: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return len(events), nil
}

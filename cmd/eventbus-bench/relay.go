package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

// The relay runs with its defaults for slot, publication, stream and subject
// prefix; the baseline uses a stream of its own.
const (
	relaySlot   = "eventbus"
	relayStream = "EVENTBUS"
)

// relayEnv is the relay's environment: the bench's services, HTTP off
// unless the bench's own environment sets EVENTBUS_HTTP_ADDR (with
// EVENTBUS_ADMIN_TOKEN, to profile the relay under load at /debug/pprof/),
// and an application_name on its pooled connections so that the CPU meter
// finds their backends (its replication connection names itself "eventbus").
func (e *env) relayEnv() []string {
	env := append(os.Environ(),
		"EVENTBUS_DATABASE_URL="+withApplicationName(e.dbURL, relayAppName),
		"EVENTBUS_NATS_URL="+e.natsURL,
		"EVENTBUS_LOG_FORMAT=text",
	)
	if os.Getenv("EVENTBUS_HTTP_ADDR") == "" {
		env = append(env, "EVENTBUS_HTTP_ADDR=")
	}
	return env
}

// relayDeliverer is what the CPU meter measures of a running relay.
func relayDeliverer(r *child) deliverer { return deliverer{pid: r.pid(), appName: relayAppName} }

// startRelay runs the relay and returns once its slot is streaming and its
// stream exists.
func startRelay(ctx context.Context, e *env) (*child, error) {
	return startRelayWith(ctx, e)
}

// startRelayWith is startRelay with env (KEY=value) added to the relay's.
func startRelayWith(ctx context.Context, e *env, env ...string) (*child, error) {
	cmd := exec.Command(e.relayBin, "run")
	cmd.Env = append(e.relayEnv(), env...)
	r, err := startChild("relay", cmd, filepath.Join(e.tmp, "relay.log"))
	if err != nil {
		return nil, err
	}

	deadline := time.Now().Add(time.Minute)
	for {
		var active bool
		err := e.pool.QueryRow(ctx, "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1", relaySlot).Scan(&active)
		if err != nil {
			_ = r.stop()
			return nil, fmt.Errorf("relay slot: %w", err)
		}
		if active {
			if _, err := e.js.Stream(ctx, relayStream); err == nil {
				return r, nil
			} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
				_ = r.stop()
				return nil, fmt.Errorf("relay stream: %w", err)
			}
		}
		select {
		case err := <-r.done:
			return nil, r.exited(err)
		case <-ctx.Done():
			_ = r.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = r.stop()
			return nil, fmt.Errorf("relay %w (streaming); its log:\n%s", errNotReady, tailOf(r.log))
		}
	}
}

// dropSlot removes the relay's slot, so that the inserts of the scenarios
// without relay are never decoded.
func dropSlot(ctx context.Context, e *env) error {
	cmd := exec.CommandContext(ctx, e.relayBin, "slot", "drop", "--force")
	cmd.Env = e.relayEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("eventbus slot drop: %w\n%s", err, out)
	}
	return nil
}

// burstScenario runs the writers of every shape with the relay streaming and
// measures delivery, the slot's peak lag and the drain time.
func burstScenario(ctx context.Context, e *env, o options) (map[shape]measurement, error) {
	if err := truncate(ctx, e.pool); err != nil {
		return nil, err
	}
	r, err := startRelay(ctx, e)
	if err != nil {
		return nil, err
	}
	out, err := burstShapes(ctx, e, o, relayStream, relayDeliverer(r))
	if err = stopWith(r, err); err != nil {
		return nil, err
	}
	return out, dropSlot(ctx, e)
}

// burstShapes measures every shape with d delivering to stream.
func burstShapes(ctx context.Context, e *env, o options, stream string, d deliverer) (map[shape]measurement, error) {
	out := make(map[shape]measurement)
	for _, s := range shapes {
		m, err := burst(ctx, e, o, s, stream, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		out[s] = m
	}
	return out, nil
}

// floorBurstScenario runs the writers of every shape with the floor pipe
// streaming: how far below the writers alone a relay that costs the least
// it can would keep them. It leaves its rows pending, so it truncates after
// itself.
func floorBurstScenario(ctx context.Context, e *env, o options) (map[shape]measurement, error) {
	if err := ensureBenchStream(ctx, e.js, floorStream, floorPrefix); err != nil {
		return nil, err
	}
	if err := truncate(ctx, e.pool); err != nil {
		return nil, err
	}
	p, err := startFloor(ctx, e)
	if err != nil {
		return nil, err
	}
	out, err := burstShapes(ctx, e, o, floorStream, floorDeliverer(p))
	if err = stopWith(p, err); err != nil {
		return nil, err
	}
	return out, truncate(ctx, e.pool)
}

// burst measures one shape with d (the relay or the floor pipe) delivering
// to stream: from the writers' start until the relay has marked the last
// row, so that its status writes count in its CPU.
func burst(ctx context.Context, e *env, o options, s shape, stream string, d deliverer) (measurement, error) {
	if err := truncate(ctx, e.pool); err != nil {
		return measurement{}, err
	}
	c, err := startCounter(ctx, e.js, stream, false)
	if err != nil {
		return measurement{}, err
	}
	defer c.stop()

	lagCtx, stopLag := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		peakLag int64
		l       load
		last    time.Time
	)
	wg.Go(func() { peakLag = samplePeakLag(lagCtx, e.pool) })
	cpu, err := e.measureCPU(ctx, d, writeAndDrain(ctx, e, o, s, c, d, &l, &last))
	stopLag()
	wg.Wait()
	if err != nil {
		return measurement{}, err
	}
	m := deliveryOf(l, last)
	m.PeakLagBytes, m.CPU = peakLag, cpu
	e.log.Info("burst", "stream", stream, "shape", s, "events", l.events, "written/s", int(m.WriteRate),
		"delivered/s", int(m.DeliveryRate), "drain_s", fmt.Sprintf("%.2f", m.DrainSeconds), "peak_lag_bytes", peakLag,
		"cpu_us", int(cpu.Total))
	return m, nil
}

// writeAndDrain is the measured step of a burst, for the relay and the
// baseline alike: the writers of shape s for o.duration, then until c has
// counted every event and no row is pending (unless d leaves them so). It
// reports the events written and leaves the load and the last arrival in l
// and last.
func writeAndDrain(ctx context.Context, e *env, o options, s shape, c *counter, d deliverer, l *load, last *time.Time) func() (int64, error) {
	return func() (int64, error) {
		var err error
		if *l, err = write(ctx, e.writers, o.writers, s, o.duration); err != nil {
			return 0, err
		}
		if *last, err = c.waitFor(ctx, l.events, o.drainLimit); err != nil {
			return 0, err
		}
		return l.events, d.settle(ctx, e.pool)
	}
}

// settle waits until d has marked every row processed; at once for a
// deliverer that leaves them pending (the floor pipe).
func (d deliverer) settle(ctx context.Context, pool *pgxpool.Pool) error {
	if d.leavesPending {
		return nil
	}
	return settle(ctx, pool)
}

// settle waits until the deliverer has marked every row processed. Events
// reach the subscriber before the relay's status write commits (the
// poller's, too), and a row truncated
// away under that write makes the relay retry it for seconds (it waits for
// rows the stream delivered but the table does not show yet), with its
// publish window filling behind it: the next measurement would start stalled.
func settle(ctx context.Context, pool *pgxpool.Pool) error {
	const q = `SELECT EXISTS (SELECT 1 FROM public.event_bus WHERE status = 'pending')`
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pending bool
		if err := pool.QueryRow(ctx, q).Scan(&pending); err != nil {
			return fmt.Errorf("pending rows: %w", err)
		}
		if !pending {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("rows left pending 30s after their delivery")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// samplePeakLag polls the slot's lag (current WAL position minus confirmed
// flush) every 100 ms until ctx ends and returns the largest value seen.
func samplePeakLag(ctx context.Context, pool *pgxpool.Pool) int64 {
	const q = `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint
FROM pg_replication_slots WHERE slot_name = $1`
	var peak int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var lag int64
		if err := pool.QueryRow(ctx, q, relaySlot).Scan(&lag); err == nil {
			peak = max(peak, lag)
		}
		select {
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
	}
}

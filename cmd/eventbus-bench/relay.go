package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
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

// relayProc is the eventbus binary running `eventbus run` as a child.
type relayProc struct {
	cmd     *exec.Cmd
	started time.Time // just before the process was started
	done    chan error
	log     string
}

func (e *env) relayEnv() []string {
	return append(os.Environ(),
		"EVENTBUS_DATABASE_URL="+e.dbURL,
		"EVENTBUS_NATS_URL="+e.natsURL,
		"EVENTBUS_HTTP_ADDR=",
		"EVENTBUS_LOG_FORMAT=text",
	)
}

// startRelay runs the relay and returns once its slot is streaming and its
// stream exists.
func startRelay(ctx context.Context, e *env) (*relayProc, error) {
	logPath := filepath.Join(e.tmp, "relay.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(e.relayBin, "run")
	cmd.Env = e.relayEnv()
	cmd.Stdout, cmd.Stderr = f, f
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start relay %s: %w", e.relayBin, err)
	}
	r := &relayProc{cmd: cmd, started: started, done: make(chan error, 1), log: logPath}
	go func() { r.done <- cmd.Wait() }()

	deadline := time.Now().Add(time.Minute)
	for {
		var active bool
		err := e.pool.QueryRow(ctx, "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1", relaySlot).Scan(&active)
		if err != nil {
			r.stop()
			return nil, fmt.Errorf("relay slot: %w", err)
		}
		if active {
			if _, err := e.js.Stream(ctx, relayStream); err == nil {
				return r, nil
			} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
				r.stop()
				return nil, fmt.Errorf("relay stream: %w", err)
			}
		}
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("relay exited before streaming (%v); see its log %s:\n%s", err, logPath, tailOf(logPath))
		case <-ctx.Done():
			r.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("relay not streaming after a minute; its log:\n%s", tailOf(logPath))
		}
	}
}

// stop asks the relay to stop (SIGTERM: drain and exit) and waits for it.
func (r *relayProc) stop() error {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("relay exited: %w; its log:\n%s", err, tailOf(r.log))
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
		return errors.New("relay did not stop within 30s of SIGTERM; killed")
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
	out := make(map[shape]measurement)
	for _, s := range shapes {
		m, err := burst(ctx, e, o, s)
		if err != nil {
			_ = r.stop()
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		out[s] = m
	}
	if err := r.stop(); err != nil {
		return nil, err
	}
	return out, dropSlot(ctx, e)
}

func burst(ctx context.Context, e *env, o options, s shape) (measurement, error) {
	if err := truncate(ctx, e.pool); err != nil {
		return measurement{}, err
	}
	c, err := startCounter(ctx, e.js, relayStream, false)
	if err != nil {
		return measurement{}, err
	}
	defer c.stop()

	lagCtx, stopLag := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		peakLag int64
	)
	wg.Go(func() { peakLag = samplePeakLag(lagCtx, e.pool) })

	l, err := write(ctx, e.pool, o.writers, s, o.duration)
	var last time.Time
	if err == nil {
		last, err = c.waitFor(ctx, l.events, o.drainLimit)
	}
	stopLag()
	wg.Wait()
	if err == nil {
		err = settle(ctx, e.pool)
	}
	if err != nil {
		return measurement{}, err
	}
	m := deliveryOf(l, last)
	m.PeakLagBytes = peakLag
	e.log.Info("burst", "shape", s, "events", l.events, "written/s", int(m.WriteRate),
		"delivered/s", int(m.DeliveryRate), "drain_s", fmt.Sprintf("%.2f", m.DrainSeconds), "peak_lag_bytes", peakLag)
	return m, nil
}

// settle waits until the relay has marked every row processed. Events reach
// the subscriber before the relay's status write commits, and a row truncated
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
			return errors.New("the relay left rows pending 30s after their delivery")
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

// tailOf returns the last few KiB of a log file.
func tailOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const n = 4096
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

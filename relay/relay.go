package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/internal/backoff"
	"github.com/eventbus/eventbus/metrics"
	"github.com/eventbus/eventbus/natsconn"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/schema"
)

// Options configures a Relay.
type Options struct {
	DatabaseURL string
	// Source is the replication slot to read: slot, publication, standby
	// status interval, failover. Its Log is set by the relay.
	Source        cdc.Options
	MaxRetries    int
	PublishWindow int
	// PublishLinger is the longest the dispatcher holds changes under load
	// to publish them together (see coalescer); 0 publishes each at once.
	PublishLinger time.Duration
	FlushInterval time.Duration
	// ShutdownTimeout bounds the drain of outstanding acks on a graceful stop.
	ShutdownTimeout time.Duration
	// HeartbeatInterval is how often a heartbeat is written to the WAL; 0 disables.
	HeartbeatInterval time.Duration
	// RedriveInterval is how often stuck rows are looked for (see
	// redriveSweep); 0 disables.
	RedriveInterval time.Duration
	// RedriveAfter is how long before the confirmed commit time a pending row
	// must have been created to count as stuck.
	RedriveAfter time.Duration
	// Services run beside the pipeline while this relay streams from the
	// slot (never on a standby), after the relay's own heartbeat and redrive
	// sweep; see Service.
	Services []Service
	Log      *slog.Logger
	Metrics  *metrics.Relay
}

// Relay streams event_bus inserts to JetStream until its context ends.
type Relay struct {
	opts  Options
	pool  *pgxpool.Pool
	store *outbox.Store
	pub   *publisher.Publisher
	log   *slog.Logger
	m     *metrics.Relay

	streaming    atomic.Bool
	notStreaming atomic.Value // string: why the last session ended, for Readiness
	// publishFailing is why the current session's publishes fail and are
	// being sent again (a PubAck timeout, a refusal by another stream);
	// empty once one is acked again.
	publishFailing atomic.Value
	unmarked       unmarked // acked by JetStream, not marked; see unmarked
}

// New returns a Relay that reads the slot of opts.Source, publishes with pub
// and marks rows through store. pool serves the backfill read and the WAL
// statements (current position, heartbeat).
func New(opts Options, pool *pgxpool.Pool, store *outbox.Store, pub *publisher.Publisher) *Relay {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Source.Log = opts.Log
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewRelay(nil)
	}
	if opts.PublishWindow <= 0 {
		opts.PublishWindow = 1024
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	r := &Relay{opts: opts, pool: pool, store: store, pub: pub, log: opts.Log, m: opts.Metrics}
	r.m.ObserveDatabase(pool, opts.Source.Slot, store, r.Ready)
	return r
}

// Ready reports whether the relay owns the slot, is streaming, and NATS is
// connected.
func (r *Relay) Ready() bool {
	ok, _ := r.Readiness()
	return ok
}

// Readiness is Ready with the reason when not ready: the replication stream
// is not running (a standby, or a session starting or retrying after a
// failure: the last one is named), NATS is disconnected, the stream is
// missing, or publishes fail and are being sent again (no PubAck within the
// timeout, the subjects taken by another stream). A slow broker is ready: it
// is back-pressure, not an outage.
func (r *Relay) Readiness() (ok bool, reason string) {
	switch {
	case !r.pub.Connected():
		return false, "NATS is disconnected"
	case !r.streaming.Load():
		if why, _ := r.notStreaming.Load().(string); why != "" {
			return false, "not streaming from the replication slot: " + why
		}
		return false, "not streaming from the replication slot yet"
	}
	if why, _ := r.publishFailing.Load().(string); why != "" {
		return false, "publishing fails, retrying: " + why
	}
	return true, ""
}

// Fatal errors stop the relay: retrying cannot help.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// IsFatal reports whether err returned by Run is a configuration or server
// problem that retrying cannot fix.
func IsFatal(err error) bool {
	var fe fatalError
	return errors.As(err, &fe) || errors.Is(err, cdc.ErrUnusable) || errors.Is(err, publisher.ErrStreamUnusable)
}

// Run streams until ctx ends, then drains in-flight acks, writes statuses,
// confirms and returns nil. Transient failures (Postgres or NATS unavailable,
// the slot in use by another relay) are retried with capped exponential
// backoff; Run returns an error only for fatal problems.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.ensurePublication(ctx); err != nil {
		return err
	}
	retry := backoff.New(200*time.Millisecond, 10*time.Second)
	standby := false
	for {
		started := time.Now()
		err := r.session(ctx)
		r.streaming.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if IsFatal(err) {
			return err
		}
		if time.Since(started) > 30*time.Second {
			retry.Reset()
		}
		wait := retry.Next()
		r.notStreaming.Store(notStreamingReason(err))
		switch {
		case errors.Is(err, cdc.ErrSlotActive):
			if !standby {
				r.log.Info("standby: the slot is in use by another relay; retrying", "slot", r.opts.Source.Slot)
				standby = true
			}
			wait = min(wait, 2*time.Second)
		default:
			standby = false
			r.log.Warn("relay session ended; retrying", "err", err, "retry_in", wait.Round(time.Millisecond).String())
		}
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

func (r *Relay) ensurePublication(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		conn, err := r.pool.Acquire(ctx)
		if err == nil {
			err = schema.EnsurePublication(ctx, conn.Conn(), r.opts.Source.Publication)
			lost := conn.Conn().IsClosed()
			conn.Release()
			if err == nil {
				return nil
			}
			if !lost && !connectionFailed(err) {
				// The server answered: the publication or the table is wrong.
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
					err = fmt.Errorf("%w (run eventbus migrate first)", err)
				}
				return fatalError{err}
			}
			// The connection went away under the statement (a restart,
			// a terminated backend): nothing is wrong with the publication.
		}
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("database unavailable; retrying", "err", err)
		if !backoff.Sleep(ctx, time.Duration(min(attempt+1, 10))*time.Second) {
			return nil
		}
	}
}

// connectionFailed reports whether err is PostgreSQL ending or refusing the
// session rather than answering the statement: connection exceptions (class
// 08), operator intervention (57: an administrator's shutdown or a
// terminated backend, a server still starting) and insufficient resources
// (53: too many connections).
func connectionFailed(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "53", "57":
		return pgErr.Code != "57014" // query_canceled: a statement timeout is the statement's
	}
	return false
}

// notStreamingReason says in a few words why a session ended, for /readyz.
func notStreamingReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, cdc.ErrSlotActive):
		return "standby: the slot is in use by another relay"
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrNoStreamResponse):
		return "the stream is missing"
	case errors.Is(err, natsconn.ErrUnreachable):
		return "NATS is unreachable"
	}
	return err.Error()
}

package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/schema"
)

// Options configures a Relay.
type Options struct {
	DatabaseURL     string
	Slot            string
	Publication     string
	MaxRetries      int
	PublishWindow   int
	FlushInterval   time.Duration
	StandbyInterval time.Duration
	ShutdownTimeout time.Duration
	// HeartbeatInterval is how often a heartbeat is written to the WAL; 0 disables.
	HeartbeatInterval time.Duration
	// RedriveInterval is how often stuck rows are looked for (see sweep); 0 disables.
	RedriveInterval time.Duration
	// RedriveAfter is how long before the confirmed commit time a pending row
	// must have been created to count as stuck.
	RedriveAfter time.Duration
	// SlotFailover creates the slot as a PostgreSQL 17 failover slot.
	SlotFailover bool
	Log          *slog.Logger
	Metrics      *Metrics
}

// Relay streams event_bus inserts to JetStream until its context ends.
type Relay struct {
	opts  Options
	pool  *pgxpool.Pool
	store *outbox.Store
	pub   *publisher.Publisher
	log   *slog.Logger
	m     *Metrics

	streaming atomic.Bool
}

// New returns a Relay. pool is used for status writes and backfill reads.
func New(opts Options, pool *pgxpool.Pool, pub *publisher.Publisher) *Relay {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.PublishWindow <= 0 {
		opts.PublishWindow = 1024
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Millisecond
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	r := &Relay{opts: opts, pool: pool, store: outbox.NewStore(pool), pub: pub, log: opts.Log, m: opts.Metrics}
	r.registerSlotGauges()
	return r
}

// Ready reports whether the relay owns the slot, is streaming, and NATS is
// connected.
func (r *Relay) Ready() bool { return r.streaming.Load() && r.pub.Connected() }

// Fatal errors stop the relay: retrying cannot help.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// IsFatal reports whether err returned by Run is a configuration or server
// problem that retrying cannot fix.
func IsFatal(err error) bool {
	var fe fatalError
	return errors.As(err, &fe) || errors.Is(err, cdc.ErrUnusable)
}

// Run streams until ctx ends, then drains in-flight acks, writes statuses,
// confirms and returns nil. Transient failures (Postgres or NATS unavailable,
// the slot in use by another relay) are retried with capped exponential
// backoff; Run returns an error only for fatal problems.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.ensurePublication(ctx); err != nil {
		return err
	}
	backoff := newBackoff(200*time.Millisecond, 10*time.Second)
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
			backoff.reset()
		}
		wait := backoff.next()
		switch {
		case errors.Is(err, cdc.ErrSlotActive):
			if !standby {
				r.log.Info("standby: the slot is in use by another relay; retrying", "slot", r.opts.Slot)
				standby = true
			}
			wait = min(wait, 2*time.Second)
		default:
			standby = false
			r.log.Warn("relay session ended; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (r *Relay) ensurePublication(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		conn, err := r.pool.Acquire(ctx)
		if err == nil {
			err = schema.EnsurePublication(ctx, conn.Conn(), r.opts.Publication)
			conn.Release()
			if err == nil {
				return nil
			}
			// The server answered: the publication or the table is wrong.
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
				err = fmt.Errorf("%w (run eventbus migrate first)", err)
			}
			return fatalError{err}
		}
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("database unavailable; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(min(attempt+1, 10)) * time.Second):
		}
	}
}

// session runs one replication connection from connect to failure or stop.
func (r *Relay) session(ctx context.Context) error {
	if err := r.pub.EnsureStream(ctx); err != nil {
		return err
	}
	stream, err := cdc.Open(ctx, r.opts.DatabaseURL, cdc.Options{
		Slot:            r.opts.Slot,
		Publication:     r.opts.Publication,
		StandbyInterval: r.opts.StandbyInterval,
		Failover:        r.opts.SlotFailover,
		Log:             r.log,
	})
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stream.Close(closeCtx); err != nil {
			r.log.Debug("close replication connection", "err", err)
		}
	}()
	slot := stream.Slot()

	backfill, err := r.openBackfill(ctx, slot)
	if err != nil {
		return err
	}
	if backfill != nil {
		defer func() { _ = backfill.Rollback(context.Background()) }()
	}
	// Transactions committed before now may have been handled by an earlier
	// session that died before confirming them; see dispatch.
	var catchUpUntil pglogrepl.LSN
	if !slot.Created {
		var lsn string
		if err := r.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
			return fmt.Errorf("read current WAL position: %w", err)
		}
		if catchUpUntil, err = pglogrepl.ParseLSN(lsn); err != nil {
			return err
		}
	}
	if err := stream.Start(ctx); err != nil {
		return err
	}
	r.streaming.Store(true)
	r.log.Info("streaming", "slot", slot.Name, "from", slot.ConfirmedLSN.String())
	return r.pipeline(ctx, stream, backfill, catchUpUntil)
}

// openBackfill starts the read of pending rows the stream will not deliver:
// for a new slot, every pending row in its exported snapshot; for a slot
// whose backfill never completed, every pending row (rows also in the stream
// are published twice and deduplicated by JetStream).
func (r *Relay) openBackfill(ctx context.Context, slot cdc.Slot) (pgx.Tx, error) {
	if slot.Created {
		// A slot this relay had backfilled before is gone: dropped by hand,
		// invalidated, or a failover to a server without it. Events committed
		// while it was missing were never decoded; the backfill below
		// publishes every row still pending, so none is lost, but say so.
		if existed, err := r.store.BackfillDone(ctx, slot.Name); err == nil && (existed || slot.Recreated) {
			r.log.Error("replication slot was missing and has been created again; republishing every pending row",
				"slot", slot.Name, "lost_wal", slot.Recreated)
		}
		if err := r.store.SetBackfillDone(ctx, slot.Name, false); err != nil {
			return nil, err
		}
	} else {
		done, err := r.store.BackfillDone(ctx, slot.Name)
		if err != nil || done {
			return nil, err
		}
	}
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin backfill: %w", err)
	}
	if slot.SnapshotName != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+slot.SnapshotName+"'"); err != nil {
			_ = tx.Rollback(ctx)
			return nil, fmt.Errorf("import snapshot of slot %q: %w", slot.Name, err)
		}
	}
	return tx, nil
}

// backoff is capped exponential backoff with full jitter on the upper half.
type backoff struct {
	base, cap, cur time.Duration
}

func newBackoff(base, cap time.Duration) *backoff { return &backoff{base: base, cap: cap} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur = min(b.cur*2, b.cap)
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.cur = 0 }

package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

var (
	// ErrUnusable means replication cannot work with this server or slot as
	// configured (wal_level, a slot of another plugin or database); retrying
	// will not help.
	ErrUnusable = errors.New("replication unusable")
	// ErrSlotActive means another process is streaming from the slot.
	ErrSlotActive = errors.New("replication slot is active in another process")
)

// Options configures a Stream.
type Options struct {
	Slot        string
	Publication string
	// StandbyInterval is how often a standby status update is sent; the
	// server times out senders that stay silent for wal_sender_timeout (60 s).
	StandbyInterval time.Duration
	// Failover creates the slot as a failover slot (PostgreSQL 17+), which
	// standbys with sync_replication_slots keep in step, so a promoted standby
	// has it.
	Failover bool
	Log      *slog.Logger
}

// Slot describes the replication slot after Open.
type Slot struct {
	Name string
	// Created is true when Open created the slot.
	Created bool
	// SnapshotName is the exported snapshot of a slot created by Open; valid
	// only until the next command on the replication connection (Start).
	SnapshotName string
	// ConfirmedLSN is where streaming resumes: the slot's confirmed_flush_lsn,
	// or its consistent point when just created.
	ConfirmedLSN pglogrepl.LSN
	// Recreated is set when the slot existed but had lost required WAL and
	// was dropped and created again.
	Recreated bool
	// Timeline is the server's current WAL timeline (IDENTIFY_SYSTEM). A
	// promotion starts a new one: a slot resumed on another timeline than
	// it last streamed on is a failover slot on a promoted standby.
	Timeline int32
}

// Stream is one replication connection streaming from the slot.
type Stream struct {
	opts Options
	conn *pgconn.PgConn
	slot Slot
	log  *slog.Logger

	confirmed atomic.Uint64 // flush/apply position to report
	received  pglogrepl.LSN // write position to report; owned by Run
	started   bool
}

// Open connects for replication and ensures the slot exists.
func Open(ctx context.Context, dsn string, opts Options) (*Stream, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.StandbyInterval <= 0 {
		opts.StandbyInterval = time.Second
	}
	s, err := connectReplication(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	// Before the slot: the snapshot CREATE_REPLICATION_SLOT exports lives
	// only until the connection's next command, and the backfill imports it
	// later (after IDENTIFY_SYSTEM it was "invalid snapshot identifier").
	sys, err := pglogrepl.IdentifySystem(ctx, s.conn)
	if err != nil {
		s.conn.Close(context.Background())
		return nil, fmt.Errorf("identify system: %w", err)
	}
	if err := s.ensureSlot(ctx); err != nil {
		s.conn.Close(context.Background())
		return nil, err
	}
	s.slot.Timeline = sys.Timeline
	s.confirmed.Store(uint64(s.slot.ConfirmedLSN))
	return s, nil
}

func connectReplication(ctx context.Context, dsn string, opts Options) (*Stream, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["DateStyle"] = "ISO, MDY"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["application_name"] = "eventbus"
	// The replication connection runs a few catalog queries: nothing of
	// public is needed, nor wanted (see schema.SafeSearchPath).
	cfg.RuntimeParams["search_path"] = "pg_catalog, pg_temp"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %w", err)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Stream{opts: opts, conn: conn, log: opts.Log}, nil
}

// ServerVersion is the server's version as it reported it at connection
// (server_version, e.g. "17.10").
func (s *Stream) ServerVersion() string { return s.conn.ParameterStatus("server_version") }

// Slot returns what Open found or created.
func (s *Stream) Slot() Slot { return s.slot }

func (s *Stream) query(ctx context.Context, sql string) ([][][]byte, error) {
	results, err := s.conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, nil
	}
	return results[len(results)-1].Rows, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (s *Stream) ensureSlot(ctx context.Context) error {
	rows, err := s.query(ctx, "SELECT current_setting('wal_level')")
	if err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if level := string(rows[0][0]); level != "logical" {
		return fmt.Errorf("%w: wal_level is %q; set wal_level = logical in postgresql.conf and restart PostgreSQL", ErrUnusable, level)
	}
	rows, err = s.query(ctx, `SELECT coalesce(plugin, ''), slot_type, coalesce(database = current_database(), false),
		active, coalesce(confirmed_flush_lsn::text, ''), coalesce(wal_status, '')
		FROM pg_replication_slots WHERE slot_name = `+quoteLiteral(s.opts.Slot))
	if err != nil {
		return fmt.Errorf("look up slot %q: %w", s.opts.Slot, err)
	}
	if len(rows) == 0 {
		return s.createSlot(ctx, "EXPORT_SNAPSHOT")
	}
	r := rows[0]
	plugin, slotType, sameDB, active, confirmed, walStatus := string(r[0]), string(r[1]), string(r[2]) == "t", string(r[3]) == "t", string(r[4]), string(r[5])
	switch {
	case slotType != "logical" || plugin != "pgoutput":
		return fmt.Errorf("%w: slot %q is a %s slot with plugin %q, not a logical pgoutput slot; choose another EVENTBUS_SLOT or drop it", ErrUnusable, s.opts.Slot, slotType, plugin)
	case !sameDB:
		return fmt.Errorf("%w: slot %q belongs to another database; choose another EVENTBUS_SLOT", ErrUnusable, s.opts.Slot)
	case active:
		return fmt.Errorf("slot %q: %w", s.opts.Slot, ErrSlotActive)
	case walStatus == "lost":
		s.log.Error("replication slot lost required WAL; recreating it and republishing pending rows", "slot", s.opts.Slot)
		if err := pglogrepl.DropReplicationSlot(ctx, s.conn, s.opts.Slot, pglogrepl.DropReplicationSlotOptions{}); err != nil {
			return fmt.Errorf("drop lost slot %q: %w", s.opts.Slot, err)
		}
		if err := s.createSlot(ctx, "EXPORT_SNAPSHOT"); err != nil {
			return err
		}
		s.slot.Recreated = true
		return nil
	}
	lsn, err := pglogrepl.ParseLSN(confirmed)
	if err != nil {
		return fmt.Errorf("slot %q confirmed_flush_lsn %q: %w", s.opts.Slot, confirmed, err)
	}
	s.slot = Slot{Name: s.opts.Slot, ConfirmedLSN: lsn}
	return nil
}

// createSlot creates the slot; snapshot is EXPORT_SNAPSHOT (Slot.SnapshotName
// is set, for a backfill) or NOEXPORT_SNAPSHOT.
func (s *Stream) createSlot(ctx context.Context, snapshot string) error {
	var res pglogrepl.CreateReplicationSlotResult
	var err error
	if s.opts.Failover {
		// PostgreSQL 17 syntax; older servers answer with a syntax error.
		var version int
		if rows, err := s.query(ctx, "SHOW server_version_num"); err == nil && len(rows) > 0 {
			version, _ = strconv.Atoi(string(rows[0][0]))
		}
		if version < 170000 {
			return fmt.Errorf("%w: EVENTBUS_SLOT_FAILOVER needs PostgreSQL 17 or newer (this server: %d)", ErrUnusable, version)
		}
		mode := map[string]string{"EXPORT_SNAPSHOT": "export", "NOEXPORT_SNAPSHOT": "nothing"}[snapshot]
		res, err = pglogrepl.ParseCreateReplicationSlot(s.conn.Exec(ctx,
			"CREATE_REPLICATION_SLOT "+s.opts.Slot+" LOGICAL pgoutput (SNAPSHOT '"+mode+"', FAILOVER true)"))
	} else {
		res, err = pglogrepl.CreateReplicationSlot(ctx, s.conn, s.opts.Slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: snapshot})
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: another relay won the race
			return fmt.Errorf("slot %q: %w", s.opts.Slot, ErrSlotActive)
		}
		return fmt.Errorf("create slot %q: %w", s.opts.Slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("slot %q consistent point %q: %w", s.opts.Slot, res.ConsistentPoint, err)
	}
	s.slot = Slot{Name: s.opts.Slot, Created: true, SnapshotName: res.SnapshotName, ConfirmedLSN: lsn}
	s.log.Info("replication slot created", "slot", s.opts.Slot, "lsn", lsn.String())
	return nil
}

// Start begins streaming from the slot's confirmed position.
func (s *Stream) Start(ctx context.Context) error {
	pub := `"` + strings.ReplaceAll(s.opts.Publication, `"`, `""`) + `"`
	err := pglogrepl.StartReplication(ctx, s.conn, s.opts.Slot, s.slot.ConfirmedLSN, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names " + quoteLiteral(pub), "messages 'true'"},
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // object_in_use
			return fmt.Errorf("slot %q: %w", s.opts.Slot, ErrSlotActive)
		}
		return fmt.Errorf("start replication on slot %q: %w", s.opts.Slot, err)
	}
	s.started = true
	s.received = s.slot.ConfirmedLSN
	return nil
}

// Confirm records that every event up to lsn is published and marked. The
// position only moves forward.
func (s *Stream) Confirm(lsn pglogrepl.LSN) {
	for {
		cur := s.confirmed.Load()
		if uint64(lsn) <= cur || s.confirmed.CompareAndSwap(cur, uint64(lsn)) {
			return
		}
	}
}

// Confirmed returns the position reported as flushed.
func (s *Stream) Confirmed() pglogrepl.LSN { return pglogrepl.LSN(s.confirmed.Load()) }

// Received returns the highest WAL position received. Only call it after Run
// has returned.
func (s *Stream) Received() pglogrepl.LSN { return s.received }

func (s *Stream) sendStatus(ctx context.Context, replyRequested bool) error {
	confirmed := s.Confirmed()
	write := max(s.received, confirmed)
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: write,
		WALFlushPosition: confirmed,
		WALApplyPosition: confirmed,
		ClientTime:       time.Now(),
		ReplyRequested:   replyRequested,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	return nil
}

// MaxBatch bounds the changes Run hands over at once, so memory stays
// bounded by the receiver's channel capacity × MaxBatch changes.
const MaxBatch = 64

// Run receives and decodes the stream into out until ctx ends (it then
// returns nil) or the connection fails. Changes are handed over in batches,
// in stream order: a batch ends with a transaction's Commit, a Position, or
// after MaxBatch changes of a large transaction, and a partial batch is
// handed over whenever the stream falls silent. So a transaction of one
// event costs one channel send, not three, and nothing waits for a batch
// to fill. The receiver owns each batch. While out is full Run keeps sending
// status updates, so a slow consumer never makes the server drop the
// connection. Run does not close out.
//
// Reads wait on the connection's read deadline, set to the next status
// update, rather than on a context per message (which costs pgconn a
// goroutine and a timer each): ctx ending moves the deadline to now.
func (s *Stream) Run(ctx context.Context, out chan<- []Change) error {
	if !s.started {
		return errors.New("cdc: Run before Start")
	}
	conn := s.conn.Conn()
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer func() {
		if stopWatch() {
			_ = conn.SetReadDeadline(time.Time{})
		}
	}()
	nextStatus := time.Now().Add(s.opts.StandbyInterval)
	statusDue := func() error {
		if time.Now().Before(nextStatus) {
			return nil
		}
		nextStatus = time.Now().Add(s.opts.StandbyInterval)
		return s.sendStatus(ctx, false)
	}
	var batch []Change
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		select { // the usual case: room in out, and no timer to make
		case out <- batch:
			batch = nil
			return nil
		default:
		}
		timer := time.NewTimer(time.Until(nextStatus))
		defer timer.Stop()
		for {
			select {
			case out <- batch:
				batch = nil
				return nil
			case <-timer.C:
				if err := statusDue(); err != nil {
					return err
				}
				timer.Reset(time.Until(nextStatus))
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	emit := func(c Change) error {
		if batch == nil {
			batch = make([]Change, 0, 4)
		}
		batch = append(batch, c)
		if c.Kind == Commit || c.Kind == Position || len(batch) >= MaxBatch {
			return flush()
		}
		return nil
	}
	dec := newDecoder()
	var lastPosition pglogrepl.LSN
	var deadline time.Time
	for {
		if err := statusDue(); err != nil {
			return ignoreCanceled(ctx, err)
		}
		if !deadline.Equal(nextStatus) {
			deadline = nextStatus
			if err := conn.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("receive replication message: %w", err)
			}
		}
		// After the deadline is set: a ctx that ended before would have its
		// deadline of now overwritten.
		if ctx.Err() != nil {
			return nil
		}
		raw, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				if err := flush(); err != nil {
					return ignoreCanceled(ctx, err)
				}
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		var data []byte
		switch m := raw.(type) {
		case *pgproto3.CopyData:
			data = m.Data
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		default:
			return fmt.Errorf("replication stream: unexpected message %T", raw)
		}
		if len(data) == 0 {
			continue
		}
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
			if err != nil {
				return fmt.Errorf("parse keepalive: %w", err)
			}
			// The server has sent everything before its WAL end: report it
			// as written (received). Flush stays what the relay confirmed.
			s.received = max(s.received, ka.ServerWALEnd)
			if ka.ServerWALEnd > lastPosition {
				lastPosition = ka.ServerWALEnd
				if err := emit(Change{Kind: Position, WALEnd: ka.ServerWALEnd, CommitTime: ka.ServerTime}); err != nil {
					return ignoreCanceled(ctx, err)
				}
			}
			if ka.ReplyRequested {
				if err := s.sendStatus(ctx, false); err != nil {
					return ignoreCanceled(ctx, err)
				}
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(data[1:])
			if err != nil {
				return fmt.Errorf("parse XLogData: %w", err)
			}
			if end := xld.WALStart + pglogrepl.LSN(len(xld.WALData)); end > s.received {
				s.received = end
			}
			c, ok, err := dec.decode(xld.WALData)
			if err != nil {
				return err
			}
			if ok {
				if c.Kind == Commit {
					// The keepalive the server sends when it waits for WAL
					// again (after every transaction, under a steady load)
					// usually reports this very end: no Position for it.
					lastPosition = max(lastPosition, c.EndLSN)
				}
				if err := emit(c); err != nil {
					return ignoreCanceled(ctx, err)
				}
			}
		}
	}
}

func ignoreCanceled(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Close reports the confirmed position one last time and closes the connection.
func (s *Stream) Close(ctx context.Context) error {
	var err error
	// A connection that failed is already being closed by pgconn, in a
	// goroutine of its own that writes its Terminate: a status update
	// written now (pglogrepl bypasses pgconn's lock) would race with it, and
	// could not arrive anyway.
	if s.started && !s.conn.IsClosed() {
		err = s.sendStatus(ctx, false)
	}
	if cerr := s.conn.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what InspectSlot needs: a pgx connection or pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SlotInfo is a replication slot as pg_replication_slots shows it.
type SlotInfo struct {
	Name              string `json:"slot"`
	Exists            bool   `json:"exists"`
	Plugin            string `json:"plugin,omitempty"`
	Active            bool   `json:"active"`
	ActivePID         *int   `json:"active_pid"`
	RestartLSN        string `json:"restart_lsn,omitempty"`
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn,omitempty"`
	WALStatus         string `json:"wal_status,omitempty"`
	// Failover is the slot's failover property (PostgreSQL 17+; null before).
	Failover    *bool  `json:"failover"`
	SafeWALSize *int64 `json:"safe_wal_size"`
	// LagBytes is the server's current WAL position minus confirmed_flush_lsn.
	LagBytes *int64 `json:"lag_bytes"`
	// LagSeconds is the walsender's flush_lag (pg_stat_replication): how long
	// WAL recently written took to be confirmed by the relay. Null while the
	// slot is inactive or nothing was written lately.
	LagSeconds *float64 `json:"lag_seconds"`
}

// InspectSlot reads the slot's row of pg_replication_slots.
func InspectSlot(ctx context.Context, db Querier, slot string) (SlotInfo, error) {
	info := SlotInfo{Name: slot}
	var restart, confirmed, walStatus *string
	err := db.QueryRow(ctx, `SELECT coalesce(s.plugin, ''), s.active, s.active_pid, s.restart_lsn::text, s.confirmed_flush_lsn::text,
		s.wal_status, s.safe_wal_size, (pg_current_wal_lsn() - s.confirmed_flush_lsn)::bigint,
		extract(epoch FROM r.flush_lag)::float8,
		(to_jsonb(s) ->> 'failover')::bool -- a column since PostgreSQL 17
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
		WHERE s.slot_name = $1`, slot).
		Scan(&info.Plugin, &info.Active, &info.ActivePID, &restart, &confirmed, &walStatus, &info.SafeWALSize, &info.LagBytes, &info.LagSeconds, &info.Failover)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("inspect slot %q: %w", slot, err)
	}
	info.Exists = true
	info.RestartLSN, info.ConfirmedFlushLSN, info.WALStatus = deref(restart), deref(confirmed), deref(walStatus)
	return info, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// SlotChange says how ResetSlot and DropSlot treat the slot.
type SlotChange struct {
	// Force terminates the walsender streaming from the slot first; without
	// it a slot in use is refused (ErrSlotActive) and nothing changes.
	Force bool
	// Failover creates the new slot as a failover slot (PostgreSQL 17+), as
	// EVENTBUS_SLOT_FAILOVER does for the relay's own.
	Failover bool
	// BeforeDrop, when set, runs once the slot is free and before it is
	// dropped: the caller records what the change means (a backfill needed)
	// only once it is sure to happen. An error leaves the slot as it was.
	BeforeDrop func(context.Context) error
}

// ResetSlot drops the slot and creates it again at the server's current
// position (see SlotChange). A missing slot is created.
func ResetSlot(ctx context.Context, dsn, slot string, change SlotChange) (pglogrepl.LSN, error) {
	s, err := connectReplication(ctx, dsn, Options{Slot: slot, Failover: change.Failover})
	if err != nil {
		return 0, err
	}
	defer s.conn.Close(context.Background())
	for attempt := 0; ; attempt++ {
		if err := s.dropSlot(ctx, change); err != nil {
			return 0, err
		}
		change.BeforeDrop = nil // recorded once
		// A relay that reconnected in between may have created the slot
		// itself; the reset drops that one too.
		err := s.createSlot(ctx, "NOEXPORT_SNAPSHOT")
		if takenBack(change.Force, attempt, err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return s.slot.ConfirmedLSN, nil
	}
}

// DropSlot drops the slot (see SlotChange). A missing slot is not an error.
func DropSlot(ctx context.Context, dsn, slot string, change SlotChange) error {
	s, err := connectReplication(ctx, dsn, Options{Slot: slot})
	if err != nil {
		return err
	}
	defer s.conn.Close(context.Background())
	return s.dropSlot(ctx, change)
}

func (s *Stream) dropSlot(ctx context.Context, change SlotChange) error {
	beforeDrop := change.BeforeDrop
	for attempt := 0; ; attempt++ {
		exists, err := s.releaseSlot(ctx, change.Force)
		if err != nil {
			return err
		}
		if beforeDrop != nil {
			if err := beforeDrop(ctx); err != nil {
				return err
			}
			beforeDrop = nil
		}
		if !exists {
			return nil
		}
		err = pglogrepl.DropReplicationSlot(ctx, s.conn, s.opts.Slot, pglogrepl.DropReplicationSlotOptions{})
		if takenBack(change.Force, attempt, err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("drop slot %q: %w", s.opts.Slot, err)
		}
		return nil
	}
}

// maxTakeBacks bounds how often a forced slot change frees the slot again
// after a relay took it back between the release and the change.
const maxTakeBacks = 20

// takenBack reports whether a forced change of the slot failed because a
// process holds it again: the relay whose walsender releaseSlot terminated
// reconnects by itself, and may stream from the slot (object_in_use) or
// create it (createSlot's ErrSlotActive) before the change reaches the
// server. The caller releases the slot again.
func takenBack(force bool, attempt int, err error) bool {
	if !force || attempt >= maxTakeBacks || err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	return errors.Is(err, ErrSlotActive) || errors.As(err, &pgErr) && pgErr.Code == "55006" /* object_in_use */
}

// releaseSlot returns once no process streams from the slot, or reports
// whether it exists at all. A slot in use is an error wrapping ErrSlotActive
// unless force is set; then its walsender is terminated, and releaseSlot
// looks every few milliseconds for the slot to be let go, so the caller's
// next command on it follows within a round trip or two. (The relay whose
// walsender it was reconnects 100 ms or more later; pg_terminate_backend's
// own wait looks only every 100 ms.) A walsender that takes the slot in the
// meantime is terminated too, up to maxTakeBacks times.
func (s *Stream) releaseSlot(ctx context.Context, force bool) (exists bool, err error) {
	const (
		poll    = 5 * time.Millisecond
		patient = 10 * time.Second // for one walsender to exit
	)
	slot := quoteLiteral(s.opts.Slot)
	var terminated string // the pid terminated last
	var terminations int
	var since time.Time
	for {
		rows, err := s.query(ctx, `SELECT active, coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = `+slot)
		if err != nil {
			return false, fmt.Errorf("look up slot %q: %w", s.opts.Slot, err)
		}
		if len(rows) == 0 {
			return false, nil
		}
		if string(rows[0][0]) != "t" {
			return true, nil
		}
		pid := string(rows[0][1])
		switch {
		case !force:
			return true, fmt.Errorf("slot %q: %w (pid %s); stop that relay first, or pass --force", s.opts.Slot, ErrSlotActive, pid)
		case pid != terminated:
			if terminations >= maxTakeBacks {
				return true, fmt.Errorf("slot %q: %w: taken again after each of %d terminations of its walsender (now pid %s)", s.opts.Slot, ErrSlotActive, terminations, pid)
			}
			if _, err := s.query(ctx, `SELECT pg_terminate_backend(`+pid+`)`); err != nil {
				return true, fmt.Errorf("terminate the walsender of slot %q: %w", s.opts.Slot, err)
			}
			terminated, terminations, since = pid, terminations+1, time.Now()
		case time.Since(since) > patient:
			return true, fmt.Errorf("slot %q is still active %s after terminating its walsender (pid %s)", s.opts.Slot, patient, pid)
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// ErrSlotMissing means the slot does not exist.
var ErrSlotMissing = errors.New("replication slot does not exist")

// ParseLSN parses a WAL position written as PostgreSQL does, two hexadecimal
// numbers of at most 8 digits separated by a slash (0/16B3748). Unlike
// pglogrepl.ParseLSN it accepts nothing else around them.
func ParseLSN(s string) (pglogrepl.LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !isHex32(hi) || !isHex32(lo) {
		return 0, fmt.Errorf("%q is not a WAL position such as 0/16B3748", s)
	}
	return pglogrepl.ParseLSN(s)
}

func isHex32(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// AdvanceSlot moves the slot's confirmed position forward to lsn with
// pg_replication_slot_advance, for incidents: the relay then never streams
// the transactions that committed in between. Their rows stay as they are
// (pending, usually); process_pending_events can hand them back. The server
// stops at its flush position if lsn is past it, so to can be less than lsn.
// A slot already at or past lsn is left alone (to == from): a slot never
// moves back, and everything before lsn is skipped already.
// Like ResetSlot it refuses while a relay streams from the slot unless force
// is set, in which case that walsender is terminated first.
func AdvanceSlot(ctx context.Context, dsn, slot string, lsn pglogrepl.LSN, force bool) (from, to pglogrepl.LSN, err error) {
	s, err := connectReplication(ctx, dsn, Options{Slot: slot})
	if err != nil {
		return 0, 0, err
	}
	defer s.conn.Close(context.Background())
	for attempt := 0; ; attempt++ {
		exists, err := s.releaseSlot(ctx, force)
		if err != nil {
			return 0, 0, err
		}
		if !exists {
			return 0, 0, fmt.Errorf("slot %q: %w; the next eventbus run creates it", slot, ErrSlotMissing)
		}
		rows, err := s.query(ctx, `SELECT coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = `+quoteLiteral(slot))
		if err != nil {
			return 0, 0, fmt.Errorf("look up slot %q: %w", slot, err)
		}
		if len(rows) == 0 {
			return 0, 0, fmt.Errorf("slot %q: %w; the next eventbus run creates it", slot, ErrSlotMissing)
		}
		if from, err = pglogrepl.ParseLSN(string(rows[0][0])); err != nil {
			return 0, 0, fmt.Errorf("slot %q has no confirmed position (%q); is it a logical slot?", slot, rows[0][0])
		}
		if lsn <= from {
			return from, from, nil
		}
		rows, err = s.query(ctx, `SELECT end_lsn::text FROM pg_replication_slot_advance(`+quoteLiteral(slot)+`, `+quoteLiteral(lsn.String())+`)`)
		if takenBack(force, attempt, err) {
			continue
		}
		if err != nil {
			return from, from, fmt.Errorf("advance slot %q to %s: %w", slot, lsn, err)
		}
		if to, err = pglogrepl.ParseLSN(string(rows[0][0])); err != nil {
			return from, from, fmt.Errorf("advance slot %q: read the new position %q: %w", slot, rows[0][0], err)
		}
		return from, to, nil
	}
}

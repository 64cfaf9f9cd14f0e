package cdc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
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
	SafeWALSize       *int64 `json:"safe_wal_size"`
	// LagBytes is the server's current WAL position minus confirmed_flush_lsn.
	LagBytes *int64 `json:"lag_bytes"`
}

// InspectSlot reads the slot's row of pg_replication_slots.
func InspectSlot(ctx context.Context, db Querier, slot string) (SlotInfo, error) {
	info := SlotInfo{Name: slot}
	var restart, confirmed, walStatus *string
	err := db.QueryRow(ctx, `SELECT coalesce(plugin, ''), active, active_pid, restart_lsn::text, confirmed_flush_lsn::text,
		wal_status, safe_wal_size, (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, slot).
		Scan(&info.Plugin, &info.Active, &info.ActivePID, &restart, &confirmed, &walStatus, &info.SafeWALSize, &info.LagBytes)
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

// ResetSlot drops the slot and creates it again at the server's current
// position. It refuses while a relay streams from the slot unless force is
// set, in which case that walsender is terminated first. The caller records
// that the new slot needs a backfill, so rows still pending are published by
// the next run.
func ResetSlot(ctx context.Context, dsn, slot string, force bool) (pglogrepl.LSN, error) {
	s, err := connectReplication(ctx, dsn, Options{Slot: slot})
	if err != nil {
		return 0, err
	}
	defer s.conn.Close(context.Background())
	if err := s.dropSlot(ctx, force); err != nil {
		return 0, err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.conn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if err != nil {
		return 0, fmt.Errorf("create slot %q: %w", slot, err)
	}
	return pglogrepl.ParseLSN(res.ConsistentPoint)
}

// DropSlot drops the slot; see ResetSlot for force. A missing slot is not an error.
func DropSlot(ctx context.Context, dsn, slot string, force bool) error {
	s, err := connectReplication(ctx, dsn, Options{Slot: slot})
	if err != nil {
		return err
	}
	defer s.conn.Close(context.Background())
	return s.dropSlot(ctx, force)
}

func (s *Stream) dropSlot(ctx context.Context, force bool) error {
	slot := quoteLiteral(s.opts.Slot)
	for attempt := 0; ; attempt++ {
		rows, err := s.query(ctx, `SELECT active, coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = `+slot)
		if err != nil {
			return fmt.Errorf("look up slot %q: %w", s.opts.Slot, err)
		}
		if len(rows) == 0 {
			return nil
		}
		if string(rows[0][0]) != "t" {
			break
		}
		if !force {
			return fmt.Errorf("slot %q: %w (pid %s); stop that relay first, or pass --force", s.opts.Slot, ErrSlotActive, rows[0][1])
		}
		if attempt == 0 {
			if _, err := s.query(ctx, `SELECT pg_terminate_backend(`+string(rows[0][1])+`)`); err != nil {
				return fmt.Errorf("terminate the walsender of slot %q: %w", s.opts.Slot, err)
			}
		}
		if attempt > 100 {
			return fmt.Errorf("slot %q is still active after terminating its walsender", s.opts.Slot)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := pglogrepl.DropReplicationSlot(ctx, s.conn, s.opts.Slot, pglogrepl.DropReplicationSlotOptions{}); err != nil {
		return fmt.Errorf("drop slot %q: %w", s.opts.Slot, err)
	}
	return nil
}

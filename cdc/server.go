package cdc

import (
	"context"
	"fmt"
)

// ServerLimits are the settings and counts that decide whether logical
// replication works on the server and has room for the relay.
type ServerLimits struct {
	WALLevel                 string
	MaxReplicationSlots      int
	ReplicationSlots         int // in use, of any kind
	MaxWALSenders            int
	WALSenders               int // connected
	MaxSlotWALKeepSize       string
	WALSenderTimeoutSettings string
}

// InspectServer reads the server's replication settings.
func InspectServer(ctx context.Context, db Querier) (ServerLimits, error) {
	var l ServerLimits
	err := db.QueryRow(ctx, `SELECT current_setting('wal_level'),
		current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,
		current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_catalog.pg_stat_replication)::int,
		current_setting('max_slot_wal_keep_size'), current_setting('wal_sender_timeout')`).
		Scan(&l.WALLevel, &l.MaxReplicationSlots, &l.ReplicationSlots, &l.MaxWALSenders, &l.WALSenders,
			&l.MaxSlotWALKeepSize, &l.WALSenderTimeoutSettings)
	if err != nil {
		return l, fmt.Errorf("read replication settings: %w", err)
	}
	return l, nil
}

// FailoverState is what a failover (PostgreSQL 17) depends on, read on the
// primary.
type FailoverState struct {
	// SlotExists and SlotFailover: the slot exists and is a failover slot.
	SlotExists, SlotFailover bool
	// SynchronizedStandbySlots is the primary's setting: the physical slots
	// of the standbys a logical walsender waits for.
	SynchronizedStandbySlots string
}

// InspectFailover reads the slot's failover property and the server's
// synchronized_standby_slots; PostgreSQL 17 or newer.
func InspectFailover(ctx context.Context, db Querier, slot string) (FailoverState, error) {
	var f FailoverState
	err := db.QueryRow(ctx, `SELECT current_setting('synchronized_standby_slots'),
		coalesce((SELECT true FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), false),
		coalesce((SELECT failover FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), false)`, slot).
		Scan(&f.SynchronizedStandbySlots, &f.SlotExists, &f.SlotFailover)
	if err != nil {
		return f, fmt.Errorf("read failover settings: %w", err)
	}
	return f, nil
}

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

// SynchronizedStandbySlots reads the primary's synchronized_standby_slots
// (PostgreSQL 17 or newer): the physical slots of the standbys a logical
// walsender waits for. The slot's own failover property is in SlotInfo.
func SynchronizedStandbySlots(ctx context.Context, db Querier) (string, error) {
	var slots string
	if err := db.QueryRow(ctx, `SELECT current_setting('synchronized_standby_slots')`).Scan(&slots); err != nil {
		return "", fmt.Errorf("read synchronized_standby_slots: %w", err)
	}
	return slots, nil
}

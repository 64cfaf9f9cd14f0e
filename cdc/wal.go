package cdc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/eventbus/eventbus/internal/periodic"
)

// HeartbeatPrefix is the prefix of the logical decoding messages the relay
// writes to move an idle slot forward (see EmitHeartbeat). The stream passes
// over them; only their transaction's end matters.
const HeartbeatPrefix = "eventbus.heartbeat"

// CurrentWALPosition reads the server's current WAL write position.
func CurrentWALPosition(ctx context.Context, db Querier) (pglogrepl.LSN, error) {
	var lsn string
	if err := db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("read current WAL position: %w", err)
	}
	return pglogrepl.ParseLSN(lsn)
}

// EmitHeartbeat writes a tiny transactional logical decoding message into
// the WAL of db's database. Its transaction comes back through the stream like
// any other and its end is confirmed, so the slot advances even when
// event_bus is quiet and the WAL is written by other databases, whose changes
// this slot's walsender does not send.
func EmitHeartbeat(ctx context.Context, db Querier) error {
	var lsn string
	if err := db.QueryRow(ctx, `SELECT pg_logical_emit_message(true, $1, '')::text`, HeartbeatPrefix).Scan(&lsn); err != nil {
		return fmt.Errorf("write heartbeat: %w", err)
	}
	return nil
}

// Heartbeat is a background service of the relay (relay.Service): it
// writes a heartbeat (EmitHeartbeat) every Interval, so the slot advances even
// when event_bus is quiet. A failed write is logged at debug level and tried
// again at the next tick: the next keepalive does the same job a little later.
type Heartbeat struct {
	DB       Querier
	Interval time.Duration
	Log      *slog.Logger
}

// Name names the service in logs.
func (Heartbeat) Name() string { return "heartbeat" }

// Run writes heartbeats until ctx ends, then returns nil.
func (h Heartbeat) Run(ctx context.Context) error {
	if h.Interval <= 0 {
		return fmt.Errorf("heartbeat: interval must be positive, got %s", h.Interval)
	}
	periodic.Run(ctx, h.Interval, false, func(ctx context.Context) {
		if err := EmitHeartbeat(ctx, h.DB); err != nil && ctx.Err() == nil && h.Log != nil {
			h.Log.Debug("heartbeat failed", "err", err)
		}
	})
	return nil
}

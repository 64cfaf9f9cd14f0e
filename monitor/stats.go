package monitor

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/outbox"
)

// relayState is the relay part of /api/stats.
type relayState struct {
	Slot          string   `json:"slot"`
	SlotActive    bool     `json:"slot_active"`
	LagBytes      *int64   `json:"lag_bytes"`
	LagSeconds    *float64 `json:"lag_seconds"`
	State         string   `json:"state"`
	NATSConnected bool     `json:"nats_connected"`
}

// relay reports the relay's state: "active" when this relay streams with NATS
// connected, "standby" when it does not but the slot is in use (by another
// relay, or by this one while NATS is away), "stopped" otherwise.
func (s *Server) relay(ctx context.Context) relayState {
	st := relayState{Slot: s.opts.Slot, State: "stopped"}
	if s.opts.Publisher != nil {
		st.NATSConnected = s.opts.Publisher.Connected()
	}
	if s.opts.Slot != "" {
		info, err := cdc.InspectSlot(ctx, s.opts.Pool, s.opts.Slot)
		if err != nil {
			s.opts.Log.Warn("monitor: inspect slot", "err", err)
		} else {
			st.SlotActive, st.LagBytes, st.LagSeconds = info.Active, info.LagBytes, info.LagSeconds
		}
	}
	switch {
	case s.opts.Ready():
		st.State = "active"
	case st.SlotActive:
		st.State = "standby"
	}
	return st
}

type minuteCounts struct {
	Minute     string `json:"minute"`
	Pending    int    `json:"pending"`
	Processing int    `json:"processing"`
	Processed  int    `json:"processed"`
	Failed     int    `json:"failed"`
}

type statsResponse struct {
	Pending    int            `json:"pending"`
	Processing int            `json:"processing"`
	Processed  int            `json:"processed"`
	Failed     int            `json:"failed"`
	Total      int            `json:"total"`
	PerMinute  []minuteCounts `json:"per_minute"`
	Relay      relayState     `json:"relay"`
}

// countsSQL is useEventStats: counts by status of the last 24 hours.
// perMinuteSQL counts events by minute of created_at and status over the
// last 60 minutes, the current one included, every minute present.
const perMinuteSQL = `SELECT m.minute,
	count(e.id) FILTER (WHERE e.status = 'pending'),
	count(e.id) FILTER (WHERE e.status = 'processing'),
	count(e.id) FILTER (WHERE e.status = 'processed'),
	count(e.id) FILTER (WHERE e.status = 'failed')
FROM generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()), interval '1 minute') AS m(minute)
LEFT JOIN public.event_bus e ON e.created_at >= m.minute AND e.created_at < m.minute + interval '1 minute'
GROUP BY m.minute ORDER BY m.minute`

func (s *Server) stats(r *http.Request, c caller) (int, any, error) {
	ctx := r.Context()
	resp := statsResponse{PerMinute: make([]minuteCounts, 0, 60)}
	err := s.inTx(ctx, c, func(tx pgx.Tx) error {
		st, err := outbox.CountByStatus(ctx, tx, 24*time.Hour)
		if err != nil {
			return err
		}
		resp.Pending, resp.Processing, resp.Processed, resp.Failed, resp.Total = st.Pending, st.Processing, st.Processed, st.Failed, st.Total
		rows, err := tx.Query(ctx, perMinuteSQL)
		if err != nil {
			return fmt.Errorf("count events per minute: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var m minuteCounts
			var minute time.Time
			if err := rows.Scan(&minute, &m.Pending, &m.Processing, &m.Processed, &m.Failed); err != nil {
				return fmt.Errorf("count events per minute: %w", err)
			}
			m.Minute = minute.UTC().Format(time.RFC3339)
			resp.PerMinute = append(resp.PerMinute, m)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, nil, err
	}
	resp.Relay = s.relay(ctx)
	return http.StatusOK, resp, nil
}

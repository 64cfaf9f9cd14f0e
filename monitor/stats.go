package monitor

import (
	"context"
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

// statsResponse is useEventStats: counts by status of the last 24 hours, per
// minute for the last hour, and the relay's state.
type statsResponse struct {
	Pending    int                   `json:"pending"`
	Processing int                   `json:"processing"`
	Processed  int                   `json:"processed"`
	Failed     int                   `json:"failed"`
	Total      int                   `json:"total"`
	PerMinute  []outbox.MinuteCounts `json:"per_minute"`
	Relay      relayState            `json:"relay"`
}

func (s *Server) stats(r *http.Request, c caller) (int, any, error) {
	ctx := r.Context()
	var resp statsResponse
	err := s.inTx(ctx, c, func(tx pgx.Tx) error {
		st, err := outbox.CountByStatus(ctx, tx, 24*time.Hour)
		if err != nil {
			return err
		}
		resp.Pending, resp.Processing, resp.Processed, resp.Failed, resp.Total = st.Pending, st.Processing, st.Processed, st.Failed, st.Total
		resp.PerMinute, err = outbox.CountPerMinute(ctx, tx)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	resp.Relay = s.relay(ctx)
	return http.StatusOK, resp, nil
}

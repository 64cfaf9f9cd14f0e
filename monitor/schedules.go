package monitor

import (
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/schedule"
)

// Scheduled events (CONTRACT.md v2, "Scheduled events"): the recurring
// schedules with their next run, and the delayed events waiting for their
// deliver_at. Both run as the caller (inTx), so row level security decides
// what an organization's admin sees.

// delayedLimit bounds the delayed events listed; the count is of all.
const delayedLimit = 100

// listSchedules answers GET /api/schedules: the schedules, and the delayed
// events waiting (soonest first, at most delayedLimit) with their count.
func (s *Server) listSchedules(r *http.Request, c caller) (int, any, error) {
	var (
		list    []schedule.Schedule
		delayed []outbox.Delayed
		total   int
	)
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		var err error
		if list, err = schedule.NewStore(tx).List(r.Context(), time.Now()); err != nil {
			return err
		}
		delayed, total, err = outbox.ListDelayed(r.Context(), tx, delayedLimit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if list == nil {
		list = []schedule.Schedule{}
	}
	if delayed == nil {
		delayed = []outbox.Delayed{}
	}
	return http.StatusOK, map[string]any{"schedules": list, "delayed": delayed, "delayed_count": total}, nil
}

// listDelayed answers GET /api/events/delayed: the delayed events waiting.
func (s *Server) listDelayed(r *http.Request, c caller) (int, any, error) {
	var (
		delayed []outbox.Delayed
		total   int
	)
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		var err error
		delayed, total, err = outbox.ListDelayed(r.Context(), tx, delayedLimit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if delayed == nil {
		delayed = []outbox.Delayed{}
	}
	return http.StatusOK, map[string]any{"events": delayed, "count": total}, nil
}

package monitor

import (
	"net/http"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
)

// redriveEvent hands one failed event back to the relay: it becomes pending
// (retry_count kept) and is published again, as `eventbus dlq redrive` does
// for many. Visibility is the caller's (another organization's event is a
// 404); the hand-back runs as the relay, like a replay.
func (s *Server) redriveEvent(r *http.Request, c caller) (int, any, error) {
	id, err := eventID(r)
	if err != nil {
		return 0, nil, err
	}
	e, err := s.fetchEvent(r.Context(), c, id)
	if err != nil {
		return 0, nil, err
	}
	if e.Status != event.StatusFailed {
		return 0, nil, badRequest(http.StatusConflict, "event %s is %s; only a failed event is redriven (Replay publishes any event again)", id, e.Status)
	}
	n, err := outbox.NewStore(s.opts.Pool).RedriveIDs(r.Context(), []string{id})
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		return 0, nil, badRequest(http.StatusConflict, "event %s is no longer failed; reload it", id)
	}
	s.opts.Log.Info("monitor: event redriven", "id", id, "by", callerName(c))
	return http.StatusOK, map[string]int{"redriven": n}, nil
}

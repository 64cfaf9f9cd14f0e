package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/catalog"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/replay"
)

// publishRequest is the body of POST /api/events, usePublishEvent's argument.
type publishRequest struct {
	EventType      string          `json:"event_type"`
	AggregateType  string          `json:"aggregate_type"`
	AggregateID    string          `json:"aggregate_id"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       json.RawMessage `json:"metadata"`
	OrganizationID *string         `json:"organization_id"`
}

func (s *Server) publishEvent(r *http.Request, c caller) (int, any, error) {
	var req publishRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	var org string
	if req.OrganizationID != nil && *req.OrganizationID != "" {
		if !event.ValidID(*req.OrganizationID) {
			return 0, nil, badRequest(http.StatusBadRequest, "organization_id %q is not a UUID", *req.OrganizationID)
		}
		org = *req.OrganizationID
	}
	var id string
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		if err := s.checkEventType(r.Context(), tx, req.EventType, req.Payload, req.Metadata); err != nil {
			return err
		}
		var err error
		id, err = outbox.Publish(r.Context(), tx, req.EventType, req.AggregateType, req.AggregateID, rawOrNil(req.Payload), rawOrNil(req.Metadata), org)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]string{"id": id}, nil
}

// checkEventType validates an event before it is inserted, as the relay
// will: the type's versions are read fresh (in the caller's transaction;
// event_types is readable by authenticated), compiled once per version by
// the monitor's catalog. A refusal is 422 with the relay's error_message.
func (s *Server) checkEventType(ctx context.Context, tx pgx.Tx, eventType string, payload, metadata json.RawMessage) error {
	versions, err := catalog.ListType(ctx, tx, eventType)
	if err != nil {
		return err
	}
	for _, err := range s.types.SetType(eventType, versions) {
		s.opts.Log.Warn("monitor: event types", "err", err)
	}
	// What publish_event stores for an absent payload or metadata: {}.
	stored := rawOrNil(payload)
	if stored == nil {
		stored = []byte("{}")
	}
	_, err = s.types.CheckPayload(eventType, stored, rawOrNil(metadata))
	var invalid *catalog.InvalidError
	if errors.As(err, &invalid) {
		return badRequest(http.StatusUnprocessableEntity, "%s", invalid.Error())
	}
	return err
}

// rawOrNil makes an absent or null payload or metadata nil, which
// outbox.Publish passes as NULL and publish_event stores as {}.
func rawOrNil(m json.RawMessage) []byte {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}

// maxProcessLimit bounds one "process pending" request.
const maxProcessLimit = 10000

func (s *Server) processPending(r *http.Request, c caller) (int, any, error) {
	req := struct {
		Limit *int `json:"limit"`
	}{}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	limit := 100
	if req.Limit != nil {
		limit = *req.Limit
	}
	if limit < 1 || limit > maxProcessLimit {
		return 0, nil, badRequest(http.StatusBadRequest, "limit must be between 1 and %d, got %d", maxProcessLimit, limit)
	}
	var n int
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		var err error
		n, err = outbox.ProcessPending(r.Context(), tx, limit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]int{"handed_back": n}, nil
}

// replayTimeout bounds the wait for the broker's PubAck of a replay.
const replayTimeout = 10 * time.Second

func (s *Server) replayEvent(r *http.Request, c caller) (int, any, error) {
	id, err := eventID(r)
	if err != nil {
		return 0, nil, err
	}
	// Visibility is the caller's; the replay itself reads the row as the relay.
	if _, err := s.fetchEvent(r.Context(), c, id); err != nil {
		return 0, nil, err
	}
	if s.opts.Publisher == nil {
		return 0, nil, badRequest(http.StatusServiceUnavailable, "replay is not available: the monitor has no NATS connection")
	}
	ctx, cancel := context.WithTimeout(r.Context(), replayTimeout)
	defer cancel()
	res, err := replay.Run(ctx, outbox.NewStore(s.opts.Pool), s.opts.Publisher, outbox.Filter{IDs: []string{id}}, replay.Options{Window: 1})
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return 0, nil, badRequest(http.StatusServiceUnavailable, "NATS did not acknowledge the replay within %s; check the relay's NATS connection and try again", replayTimeout)
	case err != nil:
		return 0, nil, err
	case len(res.Rejected) > 0:
		return 0, nil, badRequest(http.StatusUnprocessableEntity, "the broker refused the event: %s", res.Rejected[0])
	}
	s.opts.Log.Info("monitor: event replayed", "id", id, "by", callerName(c))
	return http.StatusOK, map[string]int{"replayed": res.Published}, nil
}

func callerName(c caller) string {
	if c.claims == nil {
		return "admin token"
	}
	return "user " + c.sub
}

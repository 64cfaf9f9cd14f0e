// Package monitor is the event bus monitor of the seed ("UI Components: Event
// Bus Monitor", and its hooks useEvents, usePublishEvent,
// useProcessPendingEvents, useEventStats), served by the relay itself: a JSON
// API under /api and the web page at /crm/events (embedded from web/), on the
// relay's HTTP listener.
//
// Endpoints (JSON in, JSON out; errors are {"error": "..."}):
//
//	GET  /api/events             newest first, filtered, keyset-paginated (cursor)
//	GET  /api/events/{id}        one event
//	POST /api/events             publish through public.publish_event
//	POST /api/events/process     public.process_pending_events ({"limit": n})
//	POST /api/events/{id}/replay republish one event (package replay)
//	GET  /api/stats              24 h counts by status, per minute for the last hour, the relay's state
//
// Access is for admins only, two ways. The bearer token EVENTBUS_ADMIN_TOKEN
// acts as the relay's own database connection and sees every organization.
// A Supabase-style HS256 JWT (signed with EVENTBUS_JWT_SECRET) is accepted
// when its sub has a row in public.profiles with role 'admin'; every query of
// that request then runs in a transaction as the role authenticated, with
// request.jwt.claims set, so the row-level security of public.event_bus (not
// this package) keeps the admin inside their organization: another
// organization's events are invisible to every endpoint (404 on get and
// replay, absent from lists and counts).
//
// The page and its assets are public (they hold no data); it asks for a token
// and sends it with every API call.
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/httpserver"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/replay"
)

// Options configure the monitor.
type Options struct {
	// Pool is the relay's database pool.
	Pool *pgxpool.Pool
	// Publisher republishes events for replay; nil answers replay with 503.
	Publisher *publisher.Publisher
	// AdminToken and JWTSecret are the two ways in; with neither, the API
	// answers 403.
	AdminToken string
	JWTSecret  string
	// Slot is the relay's replication slot, for /api/stats.
	Slot string
	// Ready reports whether this relay streams with NATS connected; nil is never.
	Ready func() bool
	Log   *slog.Logger
}

// Server serves the monitor's API and page.
type Server struct {
	opts         Options
	tokenMatches func(string) bool
	mux          *http.ServeMux
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// requestTimeout bounds the work of one API request.
const requestTimeout = 15 * time.Second

// New returns the monitor's handler.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return false }
	}
	s := &Server{opts: opts, tokenMatches: httpserver.TokenMatcher(opts.AdminToken), mux: http.NewServeMux()}
	api := http.NewServeMux()
	api.HandleFunc("GET /api/events", s.handle(s.listEvents))
	api.HandleFunc("POST /api/events", s.handle(s.publishEvent))
	api.HandleFunc("GET /api/events/{id}", s.handle(s.getEvent))
	api.HandleFunc("POST /api/events/process", s.handle(s.processPending))
	api.HandleFunc("POST /api/events/{id}/replay", s.handle(s.replayEvent))
	api.HandleFunc("GET /api/stats", s.handle(s.stats))
	api.HandleFunc("/api/", s.handle(func(r *http.Request, _ caller) (int, any, error) {
		return 0, nil, badRequest(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	s.mux.Handle("/api/", s.requireAdmin(api))
	s.mountWeb()
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type callerKey struct{}

// requireAdmin lets through admins only, with their caller in the context.
func (s *Server) requireAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken == "" && s.opts.JWTSecret == "" {
			writeError(w, http.StatusForbidden, "the API is disabled: set EVENTBUS_ADMIN_TOKEN or EVENTBUS_JWT_SECRET")
			return
		}
		c, err := s.authenticate(r.Context(), r)
		var ae *authError
		switch {
		case errors.As(err, &ae):
			if ae.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="eventbus"`)
			}
			writeError(w, ae.status, ae.msg)
			return
		case err != nil:
			s.opts.Log.Error("monitor: authenticate", "err", err)
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// inputError is a problem with the request, answered with its status.
type inputError struct {
	status int
	msg    string
}

func (e *inputError) Error() string { return e.msg }

func badRequest(status int, format string, args ...any) error {
	return &inputError{status: status, msg: fmt.Sprintf(format, args...)}
}

// handle adapts an endpoint that returns (status, body, error) to an
// http.HandlerFunc: errors become JSON with a status chosen by their kind.
func (s *Server) handle(fn func(*http.Request, caller) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		c, _ := r.Context().Value(callerKey{}).(caller)
		status, body, err := fn(r, c)
		if err != nil {
			status, msg := s.classify(r, err)
			writeError(w, status, msg)
			return
		}
		writeJSON(w, status, body)
	}
}

// classify maps an endpoint's error to a status and a message.
func (s *Server) classify(r *http.Request, err error) (int, string) {
	var ie *inputError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &ie):
		return ie.status, ie.msg
	case errors.As(err, &pgErr) && pgErr.Code == "22023":
		return http.StatusBadRequest, pgErr.Message
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return http.StatusForbidden, pgErr.Message
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "the request took too long (database or NATS slow or unreachable); try again"
	}
	s.opts.Log.Error("monitor: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, err.Error()
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // readable for curl; escaping protects nothing once the JSON is parsed
	_ = enc.Encode(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// decodeBody reads a JSON object into v; an empty body leaves v as it is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		if dec.More() {
			return badRequest(http.StatusBadRequest, "the request body holds more than one JSON value")
		}
		return nil
	case errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooBig):
		return badRequest(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", maxBody)
	default:
		return badRequest(http.StatusBadRequest, "the request body is not valid JSON for this endpoint: %v", err)
	}
}

func eventID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !event.ValidID(id) {
		return "", badRequest(http.StatusBadRequest, "%q is not an event id (a UUID)", id)
	}
	return id, nil
}

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
	var org any
	if req.OrganizationID != nil && *req.OrganizationID != "" {
		if !event.ValidID(*req.OrganizationID) {
			return 0, nil, badRequest(http.StatusBadRequest, "organization_id %q is not a UUID", *req.OrganizationID)
		}
		org = *req.OrganizationID
	}
	var id string
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		return tx.QueryRow(r.Context(), `SELECT public.publish_event($1, $2, $3, $4::jsonb, $5::jsonb, $6::uuid)::text`,
			req.EventType, req.AggregateType, req.AggregateID, rawOrNil(req.Payload), rawOrNil(req.Metadata), org).Scan(&id)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]string{"id": id}, nil
}

// rawOrNil passes JSON to Postgres as text; absent or null is NULL, which
// publish_event stores as {}.
func rawOrNil(m json.RawMessage) any {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return string(m)
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
		return tx.QueryRow(r.Context(), `SELECT public.process_pending_events($1)`, limit).Scan(&n)
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

package monitor

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventbus/eventbus/catalog"
	"github.com/eventbus/eventbus/httpserver"
	"github.com/eventbus/eventbus/publisher"
)

// Options configure the monitor.
type Options struct {
	// Pool is the relay's database pool.
	Pool *pgxpool.Pool
	// Publisher republishes events for replay; nil answers replay with 503.
	Publisher *publisher.Publisher
	// AdminToken and users' JWTs are the ways in; with no token, no
	// JWTSecret and no JWKSURL, the API answers 403. JWTSecret verifies
	// HS256 JWTs; JWKSURL is where the keys of ES256 and RS256 JWTs are
	// (Supabase's https://<project>.supabase.co/auth/v1/.well-known/jwks.json);
	// either, both or none. A JWT's aud must hold JWTAudience
	// ("authenticated" when empty).
	AdminToken  string
	JWTSecret   string
	JWKSURL     string
	JWTAudience string
	// Slot is the relay's replication slot, for /api/stats.
	Slot string
	// Ready reports whether this relay streams with NATS connected; nil is never.
	Ready func() bool
	// WebhookAllowPrivate lets /api/webhooks add endpoints on private and
	// loopback addresses (EVENTBUS_WEBHOOK_ALLOW_PRIVATE).
	WebhookAllowPrivate bool
	// SubjectPrefix and NATSURL are EVENTBUS_SUBJECT_PREFIX and
	// EVENTBUS_NATS_URL, for the AsyncAPI document (GET /api/asyncapi).
	SubjectPrefix string
	NATSURL       string
	// Version is eventbus's build version, the document's info.version.
	Version string
	Log     *slog.Logger
}

// Server serves the monitor's API and page.
type Server struct {
	opts         Options
	tokenMatches func(string) bool
	jwt          *verifier // nil: no JWT signs in
	mux          *http.ServeMux
	// types compiles the schemas POST /api/events checks payloads
	// against, once per version (see checkEventType).
	types *catalog.Catalog
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// defaultAudience is the aud of Supabase's user tokens.
const defaultAudience = "authenticated"

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
	s := &Server{opts: opts, tokenMatches: httpserver.TokenMatcher(opts.AdminToken), mux: http.NewServeMux(), types: catalog.New()}
	if opts.JWTSecret != "" || opts.JWKSURL != "" {
		s.jwt = &verifier{audience: cmp.Or(opts.JWTAudience, defaultAudience)}
		if opts.JWTSecret != "" {
			s.jwt.secret = []byte(opts.JWTSecret)
		}
		if opts.JWKSURL != "" {
			s.jwt.keys = newKeySet(opts.JWKSURL, opts.Log)
		}
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /api/events", s.handle(s.listEvents))
	api.HandleFunc("POST /api/events", s.handle(s.publishEvent))
	api.HandleFunc("GET /api/events/{id}", s.handle(s.getEvent))
	api.HandleFunc("POST /api/events/process", s.handle(s.processPending))
	api.HandleFunc("POST /api/events/{id}/replay", s.handle(s.replayEvent))
	api.HandleFunc("POST /api/events/{id}/redrive", s.handle(s.redriveEvent))
	api.HandleFunc("GET /api/stats", s.handle(s.stats))
	api.HandleFunc("GET /api/analytics", s.handle(s.analytics))
	api.HandleFunc("GET /api/webhooks", s.handle(s.listWebhooks))
	api.HandleFunc("POST /api/webhooks", s.handle(s.addWebhook))
	api.HandleFunc("DELETE /api/webhooks/{id}", s.handle(s.removeWebhook))
	api.HandleFunc("GET /api/webhooks/{id}/deliveries", s.handle(s.webhookDeliveries))
	api.HandleFunc("POST /api/webhooks/{id}/redeliver", s.handle(s.redeliverWebhook))
	api.HandleFunc("GET /api/asyncapi", s.asyncAPI)
	api.HandleFunc("GET /api/types", s.handle(s.listTypes))
	api.HandleFunc("GET /api/schedules", s.handle(s.listSchedules))
	api.HandleFunc("GET /api/events/delayed", s.handle(s.listDelayed))
	api.HandleFunc("/api/", s.handle(func(r *http.Request, _ caller) (int, any, error) {
		return 0, nil, badRequest(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	s.mux.Handle("/api/", s.requireAdmin(api))
	s.mountWeb()
	return s
}

// The monitor's Content-Security-Policy. The page loads its script and style
// from the relay and nothing else: it has no inline script, style or
// handler (TestPageNeedsNoInlineScriptOrStyle), and nobody may frame it. JSON
// answers load nothing and are framed by nobody.
const (
	pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	apiCSP  = "default-src 'none'; frame-ancestors 'none'"
)

// Run keeps the JWKS fresh (see keySet) until ctx ends; without
// Options.JWKSURL it returns at once. The monitor serves without it too:
// then the keys are fetched when a token needs them.
func (s *Server) Run(ctx context.Context) {
	if s.jwt != nil && s.jwt.keys != nil {
		s.jwt.keys.Run(ctx)
	}
}

// ServeHTTP serves the API and the page, every answer with headers that
// forbid framing, MIME sniffing and sending the URL on as a Referer. Every
// API request gets an id (X-Request-Id), which its log lines carry.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		h.Set("Content-Security-Policy", apiCSP)
		id := rand.Text()
		h.Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	} else {
		h.Set("Content-Security-Policy", pageCSP)
	}
	s.mux.ServeHTTP(w, r)
}

type callerKey struct{}

// requireAdmin lets through admins only, with their caller in the context.
func (s *Server) requireAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken == "" && s.jwt == nil {
			writeError(w, http.StatusForbidden, "the API is disabled: set EVENTBUS_ADMIN_TOKEN, EVENTBUS_JWT_SECRET or EVENTBUS_JWKS_URL")
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
			s.internalError(w, r, "authenticate", err)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
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
			status, msg := classify(err)
			if status == http.StatusInternalServerError {
				s.internalError(w, r, "request failed", err)
				return
			}
			writeError(w, status, msg)
			return
		}
		writeJSON(w, status, body)
	}
}

// classify maps an endpoint's error to a status and a message: the
// request's own problems (4xx, with the text the API has always given) and a
// timeout; anything else is 500, whose text is not the caller's to read.
func classify(err error) (int, string) {
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
	return http.StatusInternalServerError, ""
}

type requestIDKey struct{}

// internalError logs err with the request's id and answers 500 with that id
// only: a database error names tables, columns and statements, which are the
// operator's to read, not the caller's.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	s.opts.Log.Error("monitor: "+what, "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error", "request_id": id})
}

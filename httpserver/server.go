// Package httpserver is the HTTP server of a relay process: its listeners
// (Listen, one or two addresses) and what they serve: /healthz (the process
// is alive), /readyz (the relay streams from its slot and NATS is connected)
// and /metrics (Prometheus), open to whoever reaches the listener; and the
// admin endpoints (/debug/pprof/), which need EVENTBUS_ADMIN_TOKEN (see
// RequireToken); and, when Config.Monitor is set, the event bus monitor (/api/,
// /crm/events, / redirecting to it), which checks its callers itself (an
// admin token or an admin's JWT; see package monitor).
//
// Every other path goes through RequireToken, including paths that do not
// exist: an endpoint added later is closed unless it is added to the open list
// on purpose, and without the token nobody can probe which admin paths exist.
//
// Every listener bounds what one client can hold of it: read, write and idle
// timeouts, a header size limit and a cap on connections at once (see
// defaultLimits).
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the listeners of one relay process.
type Config struct {
	// Addr serves /healthz, /readyz, /metrics (unless MetricsAddr is set)
	// and the admin endpoints; empty serves none of them.
	Addr string
	// MetricsAddr, when set, serves /metrics on a listener of its own, and
	// Addr does not serve it.
	MetricsAddr string
	// AdminToken is the bearer token of the admin endpoints; empty disables
	// them (403).
	AdminToken string
	// Ready reports readiness, with the reason when not ready (/readyz says it).
	Ready    func() (bool, string)
	Gatherer prometheus.Gatherer
	// Monitor, when set, serves /api/, /crm/events, /crm/events/ and GET /
	// and does its own authentication.
	Monitor http.Handler
	Log     *slog.Logger

	// limits replaces defaultLimits (tests shorten them).
	limits *limits
}

// Server is one HTTP listener of the relay.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	serves string
}

// Listen binds the listeners cfg asks for: none, Addr, MetricsAddr, or both.
func Listen(cfg Config) ([]*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	lim := defaultLimits
	if cfg.limits != nil {
		lim = *cfg.limits
	}
	metrics := promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	var servers []*Server
	if cfg.Addr != "" {
		open := http.NewServeMux()
		open.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("ok\n"))
		})
		open.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
			if ok, reason := cfg.Ready(); !ok {
				http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ready\n"))
		})
		serves := "/healthz /readyz /debug/pprof/"
		if cfg.MetricsAddr == "" {
			open.Handle("GET /metrics", metrics)
			serves = "/healthz /readyz /metrics /debug/pprof/"
		}
		if cfg.Monitor != nil {
			for _, pattern := range []string{"/api/", "/crm/events", "/crm/events/", "GET /{$}"} {
				open.Handle(pattern, cfg.Monitor)
			}
			serves += " /api/ /crm/events"
		}
		admin := http.NewServeMux()
		mountPprof(admin)
		s, err := listen(cfg.Addr, splitOpen(open, RequireToken(cfg.AdminToken, admin)), serves, lim)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		s, err := listen(cfg.MetricsAddr, mux, "/metrics", lim)
		if err != nil {
			for _, s := range servers {
				_ = s.ln.Close()
			}
			return nil, err
		}
		servers = append(servers, s)
	}
	return servers, nil
}

func listen(addr string, h http.Handler, serves string, lim limits) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &Server{srv: lim.server(h), ln: newCapListener(ln, lim.maxConns), serves: serves}, nil
}

// splitOpen sends the paths open registers to open, everything else to rest.
func splitOpen(open *http.ServeMux, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := open.Handler(r); pattern != "" {
			open.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// mountPprof registers Go's profiler on mux under /debug/pprof/, as
// net/http/pprof does on the default mux (which the relay never serves).
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, …
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serves lists the endpoints of this listener, for the log.
func (s *Server) Serves() string { return s.serves }

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}

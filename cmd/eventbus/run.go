package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/eventbus/eventbus/catalog"
	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/httpserver"
	"github.com/eventbus/eventbus/internal/procs"
	"github.com/eventbus/eventbus/metrics"
	"github.com/eventbus/eventbus/monitor"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/relay"
	"github.com/eventbus/eventbus/schedule"
	"github.com/eventbus/eventbus/webhook"
)

// runRelay assembles the relay and runs it until SIGINT/SIGTERM:
//
//	reader   cdc: the replication slot streams event_bus inserts as they commit
//	publish  publisher: each event to JetStream, asynchronously, in commit order
//	mark     outbox: acked events marked processed (or failed, after retries)
//	confirm  relay: the slot confirmed past what is acked and marked
//
// plus the background services (heartbeat and redrive sweep inside the
// relay; retention here) and the HTTP endpoints.
func runRelay(ctx context.Context, cfg config.Config, args []string, log *slog.Logger) error {
	if err := noArgs(args); err != nil {
		return err
	}
	// GOMAXPROCS set by the operator is theirs; otherwise one P while the
	// relay's load allows (see package procs).
	if os.Getenv("GOMAXPROCS") == "" {
		govCtx, stopGov := context.WithCancel(ctx)
		var gov sync.WaitGroup
		gov.Go(func() { procs.Governor{Log: log}.Run(govCtx) })
		defer func() { stopGov(); gov.Wait() }()
	}
	pool, err := newPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The relay keeps at most PublishWindow events in flight; after a broker
	// error it sends them again while their first copies may still count as
	// pending in nats.go: room for both.
	// The event type catalog: loaded now so that the first events are
	// checked, then followed by its service while the relay streams.
	types := catalog.New()
	if err := catalog.Load(ctx, pool, types, log); err != nil {
		log.Warn("event types not loaded yet; events are published unchecked until they are", "err", err)
	}
	pub, err := connectPublisher(ctx, cfg, 2*cfg.PublishWindow, types, log)
	if err != nil {
		return err
	}
	defer pub.Close()
	store := outbox.NewStore(pool)

	// Recurring events: run by the active relay only, like every service.
	services := []relay.Service{
		catalog.Follower{Pool: pool, Catalog: types, Log: log},
		&schedule.Runner{Store: schedule.NewStore(pool), Poll: time.Second, Log: log},
	}
	if cfg.Retention > 0 {
		services = append(services,
			outbox.Retention{Store: store, Age: time.Duration(cfg.Retention), Interval: time.Hour, Log: log},
			webhook.Retention{Store: webhook.NewStore(pool), Age: time.Duration(cfg.Retention), Interval: time.Hour, Log: log})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r := relay.New(relay.Options{
		DatabaseURL: cfg.DatabaseURL,
		Source: cdc.Options{
			Slot: cfg.Slot, Publication: cfg.Publication, StandbyInterval: time.Duration(cfg.StandbyInterval), Failover: cfg.SlotFailover,
		},
		MaxRetries:        cfg.MaxRetries,
		PublishWindow:     cfg.PublishWindow,
		PublishLinger:     time.Duration(cfg.PublishLinger),
		FlushInterval:     time.Duration(cfg.StatusFlushInterval),
		ShutdownTimeout:   time.Duration(cfg.ShutdownTimeout),
		HeartbeatInterval: time.Duration(cfg.HeartbeatInterval),
		RedriveInterval:   time.Duration(cfg.RedriveInterval),
		RedriveAfter:      time.Duration(cfg.RedriveAfter),
		Services:          services,
		Log:               log,
		Metrics:           metrics.NewRelay(reg),
	}, pool, store, pub)

	stopHTTP, err := serveHTTP(cfg, reg, r, pool, pub, log)
	if err != nil {
		return err
	}
	defer stopHTTP()
	// Webhooks are delivered from the stream by every relay, the standby
	// too: deliverers share one durable consumer. The deliverer has a pool
	// of its own: its claims and attempts never wait for a connection behind
	// the relay's status writes, nor hold one they need.
	if cfg.Webhooks {
		deliveryPool, err := newPool(ctx, cfg)
		if err != nil {
			return err
		}
		defer deliveryPool.Close()
		stopDeliverer, _, err := startDeliverer(ctx, cfg, deliveryPool, reg, log)
		if err != nil {
			return err
		}
		defer stopDeliverer()
	}

	// nats.go closes the connection for good when a server refuses the
	// credentials again after a reconnect: the relay cannot go on.
	runCtx, stopRun := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-pub.Closed():
			stopRun(fmt.Errorf("NATS connection closed: %w", pub.Err()))
		case <-runCtx.Done():
		}
	}()
	defer func() { stopRun(nil); <-watched }()
	log.Info("relay starting", "slot", cfg.Slot, "publication", cfg.Publication, "stream", cfg.Stream, "subjects", cfg.SubjectPrefix+".>")
	started := time.Now()
	if err := r.Run(runCtx); err != nil {
		return err
	}
	if ctx.Err() == nil && runCtx.Err() != nil {
		return context.Cause(runCtx)
	}
	log.Info("relay stopped", "uptime", time.Since(started).Round(time.Second).String())
	return nil
}

// serveHTTP starts the relay's HTTP listeners (health, metrics, admin, and
// the monitor when someone can sign in to it); stop closes them and waits.
func serveHTTP(cfg config.Config, reg *prometheus.Registry, r *relay.Relay, pool *pgxpool.Pool, pub *publisher.Publisher, log *slog.Logger) (stop func(), err error) {
	var m *monitor.Server
	var mon http.Handler
	if cfg.AdminToken != "" || cfg.JWTSecret != "" || cfg.JWKSURL != "" {
		m = monitor.New(monitor.Options{
			Pool: pool, Publisher: pub, AdminToken: cfg.AdminToken, JWTSecret: cfg.JWTSecret,
			JWKSURL: cfg.JWKSURL, JWTAudience: cfg.JWTAudience, Slot: cfg.Slot, Ready: r.Ready, Log: log,
			WebhookAllowPrivate: cfg.WebhookAllowPrivate,
			SubjectPrefix:       cfg.SubjectPrefix, NATSURL: cfg.NATSURL, Version: version(),
		})
		mon = m
	}
	servers, err := httpserver.Listen(httpserver.Config{
		Addr: cfg.HTTPAddr, MetricsAddr: cfg.MetricsAddr, AdminToken: cfg.AdminToken,
		Ready: r.Readiness, Gatherer: reg, Monitor: mon, Log: log,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if m != nil && cfg.HTTPAddr != "" {
		wg.Go(func() { m.Run(ctx) }) // keeps the JWKS fresh
	}
	for _, srv := range servers {
		log.Info("http listening", "addr", srv.Addr(), "serves", srv.Serves())
		wg.Go(func() {
			if err := srv.Run(ctx); err != nil {
				log.Error("http server", "addr", srv.Addr(), "err", err)
			}
		})
	}
	return func() { cancel(); wg.Wait() }, nil
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/httpserver"
	"github.com/eventbus/eventbus/monitor"
	"github.com/eventbus/eventbus/natsconn"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/relay"
)

// runRelay assembles the relay: Postgres pool (status writes, backfill),
// JetStream publisher, the relay pipeline itself, and the HTTP endpoints.
func runRelay(ctx context.Context, cfg config.Config, args []string, log *slog.Logger) error {
	if err := noArgs(args); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database pool: %w", err)
	}
	defer pool.Close()

	natsOpts, err := natsconn.Options(cfg)
	if err != nil {
		return err
	}
	pub, err := publisher.Connect(ctx, publisher.Options{
		URL:           cfg.NATSURL,
		NATSOptions:   natsOpts,
		Stream:        cfg.Stream,
		SubjectPrefix: cfg.SubjectPrefix,
		MaxPending:    cfg.PublishWindow,
		Log:           log,
	})
	if err != nil {
		return err
	}
	defer pub.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r := relay.New(relay.Options{
		DatabaseURL:       cfg.DatabaseURL,
		Slot:              cfg.Slot,
		Publication:       cfg.Publication,
		MaxRetries:        cfg.MaxRetries,
		PublishWindow:     cfg.PublishWindow,
		FlushInterval:     cfg.StatusFlushInterval,
		StandbyInterval:   cfg.StandbyInterval,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		HeartbeatInterval: cfg.HeartbeatInterval,
		RedriveInterval:   cfg.RedriveInterval,
		RedriveAfter:      cfg.RedriveAfter,
		SlotFailover:      cfg.SlotFailover,
		Log:               log,
		Metrics:           relay.NewMetrics(reg),
	}, pool, pub)

	var mon http.Handler // the monitor, when someone can sign in to it
	if cfg.AdminToken != "" || cfg.JWTSecret != "" {
		mon = monitor.New(monitor.Options{
			Pool: pool, Publisher: pub, AdminToken: cfg.AdminToken, JWTSecret: cfg.JWTSecret,
			Slot: cfg.Slot, Ready: r.Ready, Log: log,
		})
	}
	var wg sync.WaitGroup
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer func() { stopHTTP(); wg.Wait() }()
	servers, err := httpserver.Listen(httpserver.Config{
		Addr:        cfg.HTTPAddr,
		MetricsAddr: cfg.MetricsAddr,
		AdminToken:  cfg.AdminToken,
		Ready:       r.Ready,
		Gatherer:    reg,
		Monitor:     mon,
		Log:         log,
	})
	if err != nil {
		return err
	}
	for _, srv := range servers {
		log.Info("http listening", "addr", srv.Addr(), "serves", srv.Serves())
		wg.Go(func() {
			if err := srv.Run(httpCtx); err != nil {
				log.Error("http server", "addr", srv.Addr(), "err", err)
			}
		})
	}
	if cfg.Retention > 0 {
		retention := outbox.Retention{Store: outbox.NewStore(pool), Age: time.Duration(cfg.Retention), Interval: time.Hour, Log: log}
		retCtx, stopRetention := context.WithCancel(ctx)
		var retWG sync.WaitGroup
		retWG.Go(func() {
			if err := retention.Run(retCtx); err != nil {
				log.Error("retention", "err", err)
			}
		})
		defer func() { stopRetention(); retWG.Wait() }() // before pool.Close
	}
	// nats.go closes the connection for good when a server refuses the
	// credentials again after a reconnect: the relay cannot go on.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil) // runs before wg.Wait above
	wg.Go(func() {
		select {
		case <-pub.Closed():
			stopRun(fmt.Errorf("NATS connection closed: %w", pub.Err()))
		case <-runCtx.Done():
		}
	})
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

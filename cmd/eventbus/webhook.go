package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/httpserver"
	"github.com/eventbus/eventbus/metrics"
	"github.com/eventbus/eventbus/natsconn"
	"github.com/eventbus/eventbus/webhook"
)

// version is this build's module version, for the User-Agent.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return "dev"
}

// startDeliverer runs the webhook deliverer on a NATS connection of its
// own (its pulls never queue behind the relay's publishes) until stop.
// reg, when not nil, gets the deliverer's metrics. connected reports whether
// that connection is up.
func startDeliverer(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, reg prometheus.Registerer, log *slog.Logger) (stop func(), connected func() bool, err error) {
	natsOpts, err := natsconn.Options(cfg)
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(natsOpts, nats.Name("eventbus-webhooks"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS %s: %w", natsconn.RedactURL(cfg.NATSURL), err)
	}
	userAgent := "eventbus/" + version()
	store := webhook.NewStore(pool)
	var m webhook.Metrics
	if reg != nil {
		m = metrics.NewWebhooks(reg, store.OldestPending)
	}
	d, err := webhook.New(nc, store, webhook.Options{
		Stream: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix,
		Client: webhook.NewClient(webhook.ClientOptions{Timeout: time.Duration(cfg.WebhookTimeout),
			AllowPrivate: cfg.WebhookAllowPrivate, UserAgent: userAgent}),
		Timeout: time.Duration(cfg.WebhookTimeout), RetryBase: time.Duration(cfg.WebhookRetryBase),
		MaxAttempts: cfg.WebhookMaxAttempts, PerEndpoint: cfg.WebhookConcurrency, UserAgent: userAgent, Log: log,
		DuplicateWindow: time.Duration(cfg.DuplicateWindow), MaxAge: time.Duration(cfg.StreamMaxAge), Metrics: m,
	})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.Run(ctx) })
	log.Info("webhook deliverer started", "stream", cfg.Stream, "consumer", webhook.DefaultConsumer)
	return func() { cancel(); wg.Wait(); nc.Close() }, nc.IsConnected, nil
}

// deliverCommand runs the webhook deliverer alone until SIGINT/SIGTERM.
func deliverCommand(ctx context.Context, cfg config.Config, args []string, log *slog.Logger) error {
	if err := noArgs(args); err != nil {
		return err
	}
	pool, err := newPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	// Alone, the deliverer serves what a relay serves but the monitor:
	// /healthz, /readyz (its NATS connection), /metrics (its own); on
	// EVENTBUS_HTTP_ADDR only when it is set: its default is the relay's,
	// and a deliverer beside a relay must not fight it for the port.
	if _, set := os.LookupEnv("EVENTBUS_HTTP_ADDR"); !set {
		cfg.HTTPAddr = ""
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stop, connected, err := startDeliverer(ctx, cfg, pool, reg, log)
	if err != nil {
		return err
	}
	defer stop()
	servers, err := httpserver.Listen(httpserver.Config{
		Addr: cfg.HTTPAddr, MetricsAddr: cfg.MetricsAddr, AdminToken: cfg.AdminToken, Gatherer: reg, Log: log,
		Ready: func() (bool, string) {
			if !connected() {
				return false, "NATS is disconnected"
			}
			return true, ""
		},
	})
	if err != nil {
		return err
	}
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopHTTP(); wg.Wait() }()
	for _, srv := range servers {
		log.Info("http listening", "addr", srv.Addr(), "serves", srv.Serves())
		wg.Go(func() {
			if err := srv.Run(httpCtx); err != nil {
				log.Error("http server", "addr", srv.Addr(), "err", err)
			}
		})
	}
	<-ctx.Done()
	log.Info("webhook deliverer stopping")
	return nil
}

// oneID parses a subcommand that takes one id (a UUID) after its flags.
func oneID(fs *flag.FlagSet, args []string) (string, error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(args[1:], args[0]) // the id first, flags after it
	}
	if err := fs.Parse(args); err != nil {
		return "", parse(fs, args) // the same error, as a usage error
	}
	if fs.NArg() != 1 || !event.ValidID(fs.Arg(0)) {
		return "", &usageError{fs.Name() + ": want one webhook id (a UUID)"}
	}
	return fs.Arg(0), nil
}

func webhookCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	return runSubcommand(ctx, cfg, "webhook", args, stdout,
		subcommand{"add", webhookAdd}, subcommand{"list", webhookList}, subcommand{"remove", webhookRemove},
		subcommand{"deliveries", webhookDeliveries}, subcommand{"rotate-secret", webhookRotate},
		subcommand{"redeliver", webhookRedeliver})
}

func webhookAdd(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("webhook add")
	url := fs.String("url", "", "the endpoint's URL, http:// or https:// (required)")
	var types list
	fs.Var(&types, "event-type", "an event type pattern (lead.created, lead.*, lead.>); repeat for more; none: every type")
	org := fs.String("organization-id", "", "the organization whose events it receives (none: every organization)")
	secret := fs.String("secret", "", "whsec_<base64> (default: generated)")
	description := fs.String("description", "", "what it is for")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *url == "" {
		return &usageError{"--url is required"}
	}
	if err := webhook.CheckURL(*url, cfg.WebhookAllowPrivate); err != nil {
		if errors.Is(err, webhook.ErrForbiddenTarget) {
			return &usageError{fmt.Sprintf("--url: %v (EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true allows it)", err)}
		}
		return &usageError{fmt.Sprintf("--url: %v", err)}
	}
	for _, p := range types {
		if !webhook.ValidPattern(p) {
			return &usageError{fmt.Sprintf("--event-type %q is not a pattern such as lead.created, lead.* or lead.>", p)}
		}
	}
	if *org != "" && !event.ValidID(*org) {
		return &usageError{fmt.Sprintf("--organization-id %q is not a UUID", *org)}
	}
	if *secret != "" {
		if _, err := webhook.ParseSecret(*secret); err != nil {
			return &usageError{fmt.Sprintf("--secret: %v", err)}
		}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	e, err := webhook.NewStore(pool).Add(ctx, webhook.Endpoint{URL: *url, EventTypes: types, OrganizationID: *org,
		Secret: *secret, Enabled: true, Description: *description})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s\n", e.ID, e.Secret)
	return nil
}

func webhookList(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("webhook list")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	list, err := webhook.NewStore(pool).List(ctx)
	if err != nil {
		return err
	}
	for i := range list {
		list[i].Secret = "" // printed once, by add
	}
	if *asJSON {
		return printJSONList(stdout, list)
	}
	tw := newTable(stdout, "ID\tORGANIZATION\tEVENT TYPES\tENABLED\tURL")
	for _, e := range list {
		org, types := e.OrganizationID, strings.Join(e.EventTypes, ",")
		if org == "" {
			org = "(all)"
		}
		if types == "" {
			types = "(all)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", e.ID, org, types, e.Enabled, e.URL)
	}
	return tw.Flush()
}

func webhookRemove(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("webhook remove")
	id, err := oneID(fs, args)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := webhook.NewStore(pool).Remove(ctx, id); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "removed", id)
	return nil
}

func webhookDeliveries(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("webhook deliveries")
	id := fs.String("webhook", "", "only this webhook's deliveries")
	status := fs.String("status", "", "only deliveries in this status: pending, delivered or failed")
	limit := fs.Int("limit", 100, "at most this many, newest first")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *id != "" && !event.ValidID(*id) {
		return &usageError{fmt.Sprintf("--webhook %q is not a UUID", *id)}
	}
	switch *status {
	case "", webhook.StatusPending, webhook.StatusDelivered, webhook.StatusFailed:
	default:
		return &usageError{fmt.Sprintf("--status %q: want pending, delivered or failed", *status)}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	list, err := webhook.NewStore(pool).Deliveries(ctx, *id, *status, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSONList(stdout, list)
	}
	tw := newTable(stdout, "ID\tWEBHOOK\tEVENT\tTYPE\tSTATUS\tATTEMPTS\tLAST CODE\tLAST ERROR")
	for _, d := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.ID, d.WebhookID, d.EventID, d.EventType, d.Status, d.Attempts, d.LastStatusCode, d.LastError)
	}
	return tw.Flush()
}

func webhookRotate(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("webhook rotate-secret")
	id, err := oneID(fs, args)
	if err != nil {
		return err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := webhook.NewStore(pool).RotateSecret(ctx, id, secret); err != nil {
		return err
	}
	// The old secret keeps signing for a day: deliveries carry both.
	fmt.Fprintln(stdout, secret)
	return nil
}

func webhookRedeliver(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("webhook redeliver")
	var ids list
	fs.Var(&ids, "id", "a delivery id; repeat for more")
	failed := fs.Bool("failed", false, "every failed delivery (of --webhook when given)")
	hook := fs.String("webhook", "", "with --failed: only this webhook's")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (len(ids) > 0) == *failed {
		return &usageError{"webhook redeliver: want --id DELIVERY_ID... or --failed [--webhook ID]"}
	}
	if *hook != "" && (!*failed || !event.ValidID(*hook)) {
		return &usageError{"webhook redeliver: --webhook takes a webhook id (a UUID), with --failed"}
	}
	for _, id := range ids {
		if !event.ValidID(id) {
			return &usageError{fmt.Sprintf("--id %q is not a UUID", id)}
		}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := webhook.NewStore(pool).Redeliver(ctx, *hook, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d deliveries pending again\n", n)
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/natsconn"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/replay"
)

// flags returns a FlagSet whose parse errors become usage errors.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			fs.SetOutput(&b)
			fs.PrintDefaults()
			return &usageError{"flags of " + fs.Name() + ":\n" + b.String()}
		}
		return &usageError{err.Error()}
	}
	return noArgs(fs.Args())
}

// list is a repeatable (or comma-separated) string flag.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }
func (l *list) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// timeFlag accepts RFC 3339, "2006-01-02 15:04:05", "2006-01-02", or a
// duration meaning that long ago ("2h").
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(v string) error {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			f.t = t
			return nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		f.t = time.Now().Add(-d)
		return nil
	}
	return fmt.Errorf("%q is not a time (RFC 3339, YYYY-MM-DD, or a duration ago such as 2h)", v)
}

func openPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// statusReport is the output of `eventbus status --json`.
type statusReport struct {
	cdc.SlotInfo
	Counts   outbox.Stats     `json:"counts"`
	Window   string           `json:"window"`
	Failures []outbox.Failure `json:"failures"`
}

func status(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("status")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	slot, err := cdc.InspectSlot(ctx, pool, cfg.Slot)
	if err != nil {
		return err
	}
	store := outbox.NewStore(pool)
	const window = 24 * time.Hour
	stats, err := store.Stats(ctx, window)
	if err != nil {
		return err
	}
	failures, err := store.RecentFailures(ctx, 10)
	if err != nil {
		return err
	}
	report := statusReport{SlotInfo: slot, Counts: stats, Window: "24h", Failures: failures}
	if report.Failures == nil {
		report.Failures = []outbox.Failure{}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	printStatus(stdout, report)
	return nil
}

func printStatus(w io.Writer, r statusReport) {
	if !r.Exists {
		fmt.Fprintf(w, "slot           %s (missing: created by the next eventbus run)\n", r.Name)
	} else {
		state := "inactive"
		if r.Active {
			state = "active"
			if r.ActivePID != nil {
				state = fmt.Sprintf("active, pid %d", *r.ActivePID)
			}
		}
		fmt.Fprintf(w, "slot           %s (%s)\n", r.Name, state)
		fmt.Fprintf(w, "confirmed      %s\n", r.ConfirmedFlushLSN)
		fmt.Fprintf(w, "restart        %s\n", r.RestartLSN)
		fmt.Fprintf(w, "wal_status     %s\n", r.WALStatus)
		if r.LagBytes != nil {
			lag := fmt.Sprintf("%d bytes", *r.LagBytes)
			if r.LagSeconds != nil {
				lag += fmt.Sprintf(", %s", time.Duration(*r.LagSeconds*float64(time.Second)).Round(time.Millisecond))
			}
			fmt.Fprintf(w, "lag            %s\n", lag)
		}
	}
	c := r.Counts
	fmt.Fprintf(w, "events (%s)  pending %d  processing %d  processed %d  failed %d  total %d\n",
		r.Window, c.Pending, c.Processing, c.Processed, c.Failed, c.Total)
	if c.OldestPending != nil {
		fmt.Fprintf(w, "oldest pending %s (%s ago)\n", c.OldestPending.UTC().Format(time.RFC3339), time.Since(*c.OldestPending).Round(time.Second))
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w, "latest failed events:")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  %s  %s  retries=%d  %s\n", f.ID, f.EventType, f.RetryCount, f.ErrorMessage)
		}
	}
}

func slotCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return &usageError{"usage: eventbus slot reset [--force] | eventbus slot drop [--force] | eventbus slot advance --to LSN [--force]"}
	}
	if args[0] == "advance" {
		return slotAdvanceCommand(ctx, cfg, args[1:], stdout)
	}
	fs := flags("slot " + args[0])
	force := fs.Bool("force", false, "terminate the relay streaming from the slot first")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := outbox.NewStore(pool)
	switch args[0] {
	case "reset":
		// Record first: if the reset is interrupted, the next run still backfills.
		if err := store.SetBackfillDone(ctx, cfg.Slot, false); err != nil {
			return err
		}
		lsn, err := cdc.ResetSlot(ctx, cfg.DatabaseURL, cfg.Slot, *force)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "slot %s recreated at %s; rows still pending are published by the next eventbus run\n", cfg.Slot, lsn)
	case "drop":
		if err := store.SetBackfillDone(ctx, cfg.Slot, false); err != nil {
			return err
		}
		if err := cdc.DropSlot(ctx, cfg.DatabaseURL, cfg.Slot, *force); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "slot %s dropped; the next eventbus run creates it and publishes the rows still pending\n", cfg.Slot)
	default:
		return &usageError{fmt.Sprintf("unknown slot command %q: use reset, drop or advance", args[0])}
	}
	return nil
}

func replayCommand(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("replay")
	var since, until timeFlag
	var f outbox.Filter
	fs.Var(&since, "since", "events created at or after this time")
	fs.Var(&until, "until", "events created before this time")
	fs.Var((*list)(&f.EventTypes), "event-type", "event type (repeatable)")
	fs.Var((*list)(&f.AggregateTypes), "aggregate-type", "aggregate type (repeatable)")
	fs.Var((*list)(&f.Statuses), "status", "row status (repeatable)")
	fs.Var((*list)(&f.IDs), "id", "event id (repeatable)")
	dryRun := fs.Bool("dry-run", false, "list the events that would be replayed, publish nothing")
	rate := fs.Float64("rate", 0, "at most this many events per second (0: unlimited)")
	if err := parse(fs, args); err != nil {
		return err
	}
	f.Since, f.Until = since.t, until.t
	for _, s := range f.Statuses {
		if !event.ValidStatus(s) {
			return &usageError{fmt.Sprintf("--status %q: want pending, processing, processed or failed", s)}
		}
	}
	for _, id := range f.IDs {
		if !event.ValidID(id) {
			return &usageError{fmt.Sprintf("--id %q is not a UUID", id)}
		}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	opts := replay.Options{DryRun: *dryRun, Rate: *rate}
	var pub *publisher.Publisher
	if !*dryRun {
		natsOpts, err := natsconn.Options(cfg)
		if err != nil {
			return err
		}
		pub, err = publisher.Connect(ctx, publisher.Options{URL: cfg.NATSURL, NATSOptions: natsOpts, Stream: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix, MaxPending: 256})
		if err != nil {
			return err
		}
		defer pub.Close()
		if err := pub.EnsureStream(ctx); err != nil {
			return err
		}
		total, err := outbox.NewStore(pool).Count(ctx, f)
		if err != nil {
			return err
		}
		opts.OnEvent = progress(stderr, total)
	} else {
		opts.OnEvent = func(e *event.Event) {
			fmt.Fprintf(stdout, "%s  %s  %s  %s\n", e.ID, e.CreatedAt.Format(time.RFC3339), e.EventType, e.AggregateID)
		}
	}
	res, err := replay.Run(ctx, outbox.NewStore(pool), pub, f, opts)
	if err != nil {
		return err
	}
	for _, r := range res.Rejected {
		fmt.Fprintf(stderr, "not replayed: %s\n", r)
	}
	if *dryRun {
		fmt.Fprintf(stdout, "would replay %d events\n", res.Matched)
		return nil
	}
	fmt.Fprintf(stdout, "replayed %d events\n", res.Published)
	if len(res.Rejected) > 0 {
		return fmt.Errorf("%d of %d events could not be replayed", len(res.Rejected), res.Matched)
	}
	return nil
}

// progress reports replay progress on w: a bar redrawn in place on a
// terminal, a plain line every few seconds otherwise (logs, CI).
func progress(w io.Writer, total int) func(*event.Event) {
	f, isFile := w.(*os.File)
	terminal := false
	if isFile {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			terminal = true
		}
	}
	started, last, n := time.Now(), time.Time{}, 0
	return func(*event.Event) {
		n++
		every := 5 * time.Second
		if terminal {
			every = 100 * time.Millisecond
		}
		if time.Since(last) < every && n < total {
			return
		}
		last = time.Now()
		rate := float64(n) / max(time.Since(started).Seconds(), 0.001)
		if !terminal {
			fmt.Fprintf(w, "replayed %d of %d events (%.0f/s)\n", n, total, rate)
			return
		}
		const width = 30
		done := width
		if total > 0 {
			done = min(width, n*width/total)
		}
		fmt.Fprintf(w, "\r[%s%s] %d/%d %.0f/s", strings.Repeat("#", done), strings.Repeat(".", width-done), n, total, rate)
		if n >= total {
			fmt.Fprintln(w)
		}
	}
}

func publishCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("publish")
	eventType := fs.String("event-type", "", "event type, e.g. payment.completed (required)")
	aggregateType := fs.String("aggregate-type", "", "aggregate type, e.g. payment (required)")
	aggregateID := fs.String("aggregate-id", "", "aggregate id (required)")
	payload := fs.String("payload", "{}", "payload JSON")
	metadata := fs.String("metadata", "{}", "metadata JSON")
	org := fs.String("organization-id", "", "organization UUID")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{
		{"--event-type", *eventType}, {"--aggregate-type", *aggregateType}, {"--aggregate-id", *aggregateID},
	} {
		if f.value == "" {
			return &usageError{f.name + " is required"}
		}
	}
	for _, f := range []struct{ name, value string }{{"--payload", *payload}, {"--metadata", *metadata}} {
		if !json.Valid([]byte(f.value)) {
			return &usageError{fmt.Sprintf("%s is not valid JSON: %s", f.name, f.value)}
		}
	}
	if *org != "" && !event.ValidID(*org) {
		return &usageError{fmt.Sprintf("--organization-id %q is not a UUID", *org)}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	id, err := outbox.NewStore(pool).Publish(ctx, *eventType, *aggregateType, *aggregateID, []byte(*payload), []byte(*metadata), *org)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/natsconn"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/schema"
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

// newPool returns a pool for cfg's database whose connections resolve
// names in pg_catalog only (schema.SafeSearchPath): a function planted in
// public with exact argument types would otherwise win over a polymorphic
// built-in (unnest, array_agg…) that eventbus's statements call, and run
// with the relay's rights. It connects lazily.
func newPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = schema.SafeSearchPath
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	return pool, nil
}

func openPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	pool, err := newPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// openStream connects to NATS as cfg says (natsconn.Options), naming the
// client name, and looks up cfg's stream. The caller closes the connection.
func openStream(ctx context.Context, cfg config.Config, name string) (*nats.Conn, jetstream.Stream, error) {
	natsOpts, err := natsconn.Options(cfg)
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(natsOpts, nats.Name(name), nats.MaxReconnects(-1))...)
	if err != nil {
		if natsconn.Refused(err) || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("connect to NATS %s: %w", natsconn.RedactURL(cfg.NATSURL), err)
		}
		return nil, nil, &natsconn.UnreachableError{URL: cfg.NATSURL, Err: err}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	stream, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			nc.Close()
			return nil, nil, fmt.Errorf("stream %s does not exist: eventbus run creates it", cfg.Stream)
		}
		err = natsconn.Unreachable(ctx, nc, cfg.NATSURL, fmt.Errorf("look up stream %s: %w", cfg.Stream, err))
		nc.Close()
		return nil, nil, err
	}
	return nc, stream, nil
}

// printJSON writes v as indented JSON, the form of every --json output.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printJSONList is printJSON for a list: an empty one prints [], not null.
func printJSONList[T any](w io.Writer, list []T) error {
	if list == nil {
		list = []T{}
	}
	return printJSON(w, list)
}

// newTable starts the table of a list command's plain output with its header
// (columns separated by tabs); the caller writes the rows and flushes it.
func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", args[0])}
	}
	return nil
}

// connectPublisher connects to NATS as cfg says (credentials, TLS) for
// publishing to the stream, which EnsureStream creates with cfg's duplicate
// window and maximum age. maxPending bounds the publishes awaiting a PubAck.
// checker, when not nil, is the event type catalog (publisher.Options.Catalog).
func connectPublisher(ctx context.Context, cfg config.Config, maxPending int, checker publisher.Checker, log *slog.Logger) (*publisher.Publisher, error) {
	natsOpts, err := natsconn.Options(cfg)
	if err != nil {
		return nil, err
	}
	return publisher.Connect(ctx, publisher.Options{
		URL: cfg.NATSURL, NATSOptions: natsOpts, Stream: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix,
		DuplicateWindow: time.Duration(cfg.DuplicateWindow), MaxAge: time.Duration(cfg.StreamMaxAge),
		MaxPending: maxPending, Catalog: checker, Log: log,
	})
}

// subcommand is one sub-command of a command such as webhook or schedule.
type subcommand struct {
	name string
	run  func(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error
}

// runSubcommand runs the sub-command args[0] of command with the rest of
// args; none, or an unknown one, is a usage error naming those there are.
func runSubcommand(ctx context.Context, cfg config.Config, command string, args []string, stdout io.Writer, subs ...subcommand) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	want := names[len(names)-1]
	if len(names) > 1 {
		want = strings.Join(names[:len(names)-1], ", ") + " or " + want
	}
	if len(args) == 0 {
		return &usageError{command + ": want " + want}
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, cfg, args[1:], stdout)
		}
	}
	return &usageError{fmt.Sprintf("%s: unknown subcommand %q; want %s", command, args[0], want)}
}

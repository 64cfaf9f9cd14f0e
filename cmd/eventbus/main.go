// Command eventbus relays inserts of public.event_bus to NATS JetStream.
//
//	eventbus migrate   apply the embedded SQL migrations
//	eventbus run       run the relay
//	eventbus status    slot, lag and counts
//	eventbus slot      reset, drop or advance the replication slot
//	eventbus replay    republish stored events
//	eventbus doctor    check the setup, each finding with its fix
//	eventbus verify    find processed events missing from the stream; --repair
//	eventbus publish   call publish_event
//	eventbus prune     delete old processed (or failed) events
//	eventbus tail      print events as they reach the stream
//	eventbus deliver   deliver webhooks (without the relay)
//	eventbus webhook   add, list, remove webhook endpoints; their deliveries
//	eventbus dlq       list the dead-letter stream; redrive failed events
//	eventbus schedule  add, list, remove recurring events
//
// Configuration comes from EVENTBUS_* environment variables (see README.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventbus/eventbus/config"
)

// usageError is bad command-line input: exit code 2, like bad configuration.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

const usage = `usage: eventbus <command>

commands:
  migrate   apply the embedded SQL migrations (idempotent)
  run       stream event_bus inserts to NATS JetStream until SIGINT/SIGTERM
  status [--json]
            slot, lag, counts by status over 24 h, latest failed events
  slot reset [--force] | slot drop [--force]
            recreate or drop the replication slot; pending rows are kept
  slot advance --to LSN [--force]
            move the slot past LSN: events committed before it are skipped
            (their rows stay pending; process_pending_events redrives them)
  replay [--since T] [--until T] [--event-type X] [--aggregate-type A]
         [--status S] [--id UUID]... [--dry-run] [--rate N]
            republish stored events (fresh Nats-Msg-Id, Eventbus-Replay: true)
  verify [--since T] [--until T] [--repair] [--json]
            list the processed events created in the window (default: the
            last 24 h) that are missing from the stream (acks lost by the
            broker); --repair publishes them again. Exit 1 while any is missing
  doctor [--json]
            check the database, the slot, the publication, the triggers,
            row-level security, NATS, the stream and a running relay; each
            check ok, warn or fail with its fix. Exit 1 on any fail
  publish --event-type X --aggregate-type A --aggregate-id ID
          [--payload JSON] [--metadata JSON] [--organization-id UUID]
            call publish_event and print the new id
  prune --older-than DURATION [--status processed|failed]... [--batch N]
        [--dry-run]
            delete events older than DURATION (30d, 36h), processed by
            default, in batches; pending events are never deleted
  tail [SUBJECT_FILTER] [--since T] [--json]
            print events as they reach the stream until SIGINT/SIGTERM;
            the filter (default <prefix>.>) may omit the prefix: lead.>
  deliver   deliver webhooks until SIGINT/SIGTERM, without the relay (run
            delivers them too unless EVENTBUS_WEBHOOKS=false); several
            deliverers share the work
  webhook add --url URL [--event-type PATTERN]... [--organization-id UUID]
              [--secret S] [--description D]
            add an endpoint; prints its id and its secret
  webhook list [--json] | webhook remove ID
  webhook deliveries [--webhook ID] [--status S] [--limit N] [--json]
  webhook rotate-secret ID
            a new secret, printed; the old one stays valid for 24 h
  webhook redeliver (--id DELIVERY_ID... | --failed [--webhook ID])
            make deliveries pending again, attempts reset
  dlq list [--json]
            the dead letters: failed events and failed webhook deliveries
  dlq redrive [--event-type X] [--since T]
            hand failed events back to the relay (as process_pending_events)
  types set EVENT_TYPE [--schema FILE] [--description D]
            add the next version of an event type (printed), with the JSON
            Schema (2020-12) its payloads must match
  types list [--json]
            the event types and their versions; the highest is current
  asyncapi [--json]
            print the AsyncAPI 3.0 document of the event types (YAML)
  schedule add --name N --cron EXPR --event-type X --aggregate-type A
               --aggregate-id ID [--payload JSON] [--metadata JSON]
               [--organization-id UUID] [--timezone TZ]
            a recurring event: the running relay publishes it at every tick
            of the five cron fields (UTC unless --timezone); prints its id
  schedule list [--json] | schedule remove NAME

Configuration: EVENTBUS_* environment variables, see README.md.`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(stderr, "eventbus: configuration: %v\n", err)
		return 2
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "eventbus: configuration: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch args[0] {
	case "migrate":
		err = migrate(ctx, cfg, args[1:], stdout, log)
	case "run":
		err = runRelay(ctx, cfg, args[1:], log)
	case "status":
		err = status(ctx, cfg, args[1:], stdout)
	case "slot":
		err = slotCommand(ctx, cfg, args[1:], stdout)
	case "replay":
		err = replayCommand(ctx, cfg, args[1:], stdout, stderr)
	case "verify":
		err = verifyCommand(ctx, cfg, args[1:], stdout, stderr)
	case "doctor":
		err = doctorCommand(ctx, cfg, args[1:], stdout)
	case "publish":
		err = publishCommand(ctx, cfg, args[1:], stdout, stderr)
	case "prune":
		err = pruneCommand(ctx, cfg, args[1:], stdout)
	case "tail":
		err = tailCommand(ctx, cfg, args[1:], stdout, stderr)
	case "deliver":
		err = deliverCommand(ctx, cfg, args[1:], log)
	case "webhook":
		err = webhookCommand(ctx, cfg, args[1:], stdout)
	case "dlq":
		err = dlqCommand(ctx, cfg, args[1:], stdout)
	case "types":
		err = typesCommand(ctx, cfg, args[1:], stdout)
	case "asyncapi":
		err = asyncapiCommand(ctx, cfg, args[1:], stdout)
	case "schedule":
		err = scheduleCommand(ctx, cfg, args[1:], stdout)
	default:
		err = &usageError{fmt.Sprintf("unknown command %q; run eventbus --help", args[0])}
	}
	if err != nil {
		// A configuration problem found only when a command uses it (a
		// NATS certificate file that does not load, say) is still one.
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "eventbus: configuration: %s\n", cfg.Redactor().Replace(ce.Error()))
			return 2
		}
		fmt.Fprintf(stderr, "eventbus %s: %s\n", args[0], cfg.Redactor().Replace(describe(args[0], err, cfg.DatabaseURL)))
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	level, err := config.ParseLogLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	// No secret of the configuration reaches the log, whatever a library
	// puts in an error: every string and error attribute, the message
	// included, passes through the redactor.
	redactor := cfg.Redactor()
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		switch a.Value.Kind() {
		case slog.KindDuration:
			// Text, never nanoseconds: "5.2s" reads the same in both formats.
			a.Value = slog.StringValue(a.Value.Duration().String())
		case slog.KindString:
			a.Value = slog.StringValue(redactor.Replace(a.Value.String()))
		case slog.KindAny:
			switch v := a.Value.Any().(type) {
			case error:
				a.Value = slog.StringValue(redactor.Replace(v.Error()))
			case fmt.Stringer:
				a.Value = slog.StringValue(redactor.Replace(v.String()))
			}
		}
		return a
	}}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

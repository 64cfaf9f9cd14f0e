// Command consumer is an example of a service consuming eventbus events from
// NATS JetStream the way docs/consumers.md recommends:
//
//   - a durable pull consumer (one name per service) on a filter of the
//     EVENTBUS stream, so the server remembers what the service acked across
//     restarts, and several instances of the service share the work;
//   - explicit acks, sent only after the work is done;
//   - idempotent handling by event id, since delivery is at least once;
//   - a failed event is Nak'ed with a delay so JetStream redelivers it, at most
//     MaxDeliver times, then terminated as a dead letter;
//   - a graceful stop on SIGINT/SIGTERM.
//
// Run it next to a relay (`make run`):
//
//	go run ./examples/consumer -filter 'events.lead.>' -name example-consumer
//
// and create a lead, or `eventbus publish --event-type lead.created
// --aggregate-type lead --aggregate-id 1`. The NATS URL and the stream default
// to the relay's EVENTBUS_NATS_URL and EVENTBUS_STREAM when set.
//
// The example's handler prints the event; a real service replaces handleEvent
// and keeps processed ids in a table (see consumer.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg := Config{Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	flag.StringVar(&cfg.URL, "nats-url", env("EVENTBUS_NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL(s), comma-separated")
	flag.StringVar(&cfg.Stream, "stream", env("EVENTBUS_STREAM", "EVENTBUS"), "JetStream stream written by eventbus")
	flag.StringVar(&cfg.Filter, "filter", "events.lead.>", "subject filter")
	flag.StringVar(&cfg.Name, "name", "example-consumer", "durable consumer name, one per service")
	flag.IntVar(&cfg.MaxDeliver, "max-deliver", 10, "deliveries of one event before it is given up as a dead letter")
	flag.DurationVar(&cfg.AckWait, "ack-wait", 30*time.Second, "redeliver an event not acked within this time")
	flag.DurationVar(&cfg.RetryDelay, "retry-delay", time.Second, "delay before the first redelivery of a failed event; grows with each delivery")
	flag.IntVar(&cfg.Remember, "remember", 100_000, "event ids kept in memory for deduplication")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, handleEvent); err != nil {
		fmt.Fprintf(os.Stderr, "consumer: %v\n", err)
		os.Exit(1)
	}
}

// handleEvent is where a service does its work.
func handleEvent(_ context.Context, e Event) error {
	fmt.Printf("%s %s %s/%s replay=%t payload=%s\n", e.ID, e.EventType, e.AggregateType, e.AggregateID, e.Replay, e.Payload)
	return nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

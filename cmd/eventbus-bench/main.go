// Command eventbus-bench measures the relay against the database alone and
// against the seed's polling design, on services it starts itself (the same
// devstack helpers the tests use) or on given ones.
//
// Every run executes, in order and with the same writer load:
//
//   - source: C writers insert events for -duration with no relay and no
//     slot: the rate the database alone sustains, in two shapes (one
//     publish_event per transaction, and 100-row INSERT … SELECT transactions);
//   - baseline: the seed's design as a reference, a poller that claims pending
//     rows FOR UPDATE SKIP LOCKED in batches of 100 and 1000, publishes them to
//     its own stream with acks and marks them processed; no relay;
//   - burst: the same writers with the relay (the eventbus binary, run as a
//     child process) streaming the inserts; a JetStream subscriber counts
//     distinct event ids to measure delivery, the slot's lag is polled.
//
// It reports the median of -runs runs and the individual values as a markdown
// table on stdout, and as JSON with -json. Ratios (relay over baseline) are
// taken within one run. The database must be a scratch one: the bench
// truncates public.event_bus before every measurement and drops the relay's
// slot after each run.
//
//	eventbus-bench [-runs 3] [-duration 10s] [-writers 4] [-json out.json] [-smoke]
//	               [-database-url URL] [-nats-url URL] [-relay-bin path]
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

// options are the command's flags.
type options struct {
	runs        int
	duration    time.Duration
	writers     int
	drainLimit  time.Duration
	jsonPath    string
	databaseURL string
	natsURL     string
	relayBin    string
}

func main() {
	var o options
	smoke := flag.Bool("smoke", false, "run every scenario once for 1s (a CI check, no thresholds)")
	flag.IntVar(&o.runs, "runs", 3, "runs of every scenario; the report gives medians")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long the writers insert, per scenario")
	flag.IntVar(&o.writers, "writers", 4, "concurrent writers (one connection each)")
	flag.DurationVar(&o.drainLimit, "drain-limit", 2*time.Minute, "longest wait for delivery after the writers stop")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.databaseURL, "database-url", "", "a scratch database with wal_level=logical (its event_bus is truncated); default: start a local cluster")
	flag.StringVar(&o.natsURL, "nats-url", "", "NATS with JetStream; default: start an embedded server")
	flag.StringVar(&o.relayBin, "relay-bin", "", "the eventbus binary; default: go build ./cmd/eventbus into a temp dir")
	flag.Parse()
	if *smoke {
		o.runs, o.duration = 1, time.Second
	}
	if o.runs < 1 || o.writers < 1 || o.duration <= 0 {
		fmt.Fprintln(os.Stderr, "eventbus-bench: -runs, -writers and -duration must be positive")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintf(os.Stderr, "eventbus-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	env, err := startEnv(ctx, o, log)
	if err != nil {
		return err
	}
	defer env.close()

	rep := newReport(o, env.info)
	for i := 1; i <= o.runs; i++ {
		log.Info("run", "n", i, "of", o.runs)
		for _, s := range shapes {
			w, err := sourceScenario(ctx, env, o, s)
			if err != nil {
				return fmt.Errorf("run %d: source %s: %w", i, s, err)
			}
			rep.add("source", s, w)
		}
		for _, batch := range []int{100, 1000} {
			for _, s := range shapes {
				m, err := baselineScenario(ctx, env, o, s, batch)
				if err != nil {
					return fmt.Errorf("run %d: baseline %d %s: %w", i, batch, s, err)
				}
				rep.add(fmt.Sprintf("baseline-%d", batch), s, m)
			}
		}
		ms, err := burstScenario(ctx, env, o)
		if err != nil {
			return fmt.Errorf("run %d: burst: %w", i, err)
		}
		for _, s := range shapes {
			rep.add("burst", s, ms[s])
		}
	}

	rep.printMarkdown(os.Stdout)
	if o.jsonPath != "" {
		if err := rep.writeJSON(o.jsonPath); err != nil {
			return err
		}
	}
	return nil
}

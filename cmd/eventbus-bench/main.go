// Command eventbus-bench measures the relay against the database alone and
// against the seed's polling design, on services it starts itself (with
// pgcluster and natsserver, as the tests do) or on given ones.
//
// Every run executes, in order, the scenarios chosen with -scenarios:
//
//   - source: C writers insert events for -duration with no relay and no
//     slot: the rate the database alone sustains, in three shapes (one
//     publish_event per transaction, one lead insert per transaction whose
//     trigger publishes, and 100-row INSERT … SELECT transactions);
//   - baseline: the seed's design as a reference, a poller that claims pending
//     rows FOR UPDATE SKIP LOCKED in batches of 100 and 1000, publishes them to
//     its own stream with acks and marks them processed; no relay;
//   - burst: the same writers with the relay (the eventbus binary, run as a
//     child process) streaming the inserts; a JetStream subscriber counts
//     distinct event ids to measure delivery, the slot's lag is polled; then
//     the same with the floor pipe (see latency) instead of the relay;
//   - latency: single-row transactions paced at fixed rates, each stamped
//     with clock_timestamp() in the writer's transaction; the subscriber
//     reads the stamp back and records the time to arrival (baseline at
//     -baseline-rates, relay at -rates), then the floor pipe at the
//     baseline's rates: the least a relay could do per event (read the slot,
//     publish each insert at once, mark nothing; floor.go, run as a child
//     with the hidden sub-command `floor-pipe`), so that the relay's cost
//     can be split into what any per-transaction hand-off pays and its own;
//   - webhooks: the single-row burst with webhook delivery off and on (one
//     endpoint for every event, a receiver in this process), and commit →
//     stream and commit → webhook received at 500 events/s;
//   - backlog: -backlog events written while nobody delivers, then drained
//     by the baseline and by the relay (its slot created beforehand): drain
//     rate, and the deliverer process's peak RSS and CPU;
//   - onetxn: the same -backlog events inserted by one transaction, drained
//     alike: PostgreSQL decodes it at its commit, spilling it to disk, and
//     the relay's memory must not grow with it (the bytes spilled are
//     reported).
//
// Around every measurement it reads, from /proc, the CPU time of each
// component and reports it per delivered event: the relay's process or the
// poller's (the bench runs the poller as a child process, itself with the
// hidden sub-command `baseline-poller`), the slot's walsender, the
// deliverer's pooled connections (found in pg_stat_activity by their
// application_name), the rest of the Postgres cluster beyond the writers'
// backends, and NATS when it runs as a child process (-nats-bin). The source
// scenario, with no deliverer, gets the cluster's and NATS's figures alone:
// what the inserts cost beyond their own backends.
//
// It reports the median of -runs runs and the individual values as markdown
// tables on stdout, and as JSON with -json. Ratios (relay over baseline) are
// taken within one run. The database must be a scratch one: the bench
// truncates public.event_bus and public.leads before every measurement and
// drops the relay's slot after each scenario that used it.
//
//	eventbus-bench [-runs 3] [-duration 10s] [-writers 4] [-json out.json] [-smoke]
//	               [-scenarios source,baseline,burst,latency,webhooks,backlog,onetxn]
//	               [-rates 1000,2000,5000] [-latency-duration 30s] [-latency-writers 16]
//	               [-baseline-rates 2000]
//	               [-backlog 1000000]
//	               [-database-url URL] [-nats-url URL | -nats-bin path] [-relay-bin path]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	runs            int
	duration        time.Duration
	writers         int
	drainLimit      time.Duration
	scenarios       []string
	rates           []float64
	baselineRates   []float64
	latencyDuration time.Duration
	latencyWriters  int
	backlog         int
	jsonPath        string
	databaseURL     string
	natsURL         string
	natsBin         string
	relayBin        string
}

// allScenarios in the order a run executes them: the ones without a slot
// first, so that their inserts are never decoded.
var allScenarios = []string{"source", "baseline", "burst", "latency", "webhooks", "backlog", "onetxn"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == pollerCommand {
		os.Exit(pollerMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == floorCommand {
		os.Exit(floorMain())
	}
	o := options{
		scenarios:     allScenarios,
		rates:         []float64{1000, 2000, 5000},
		baselineRates: []float64{2000},
	}
	smoke := flag.Bool("smoke", false, "run every scenario once, short (a CI check, no thresholds); flags given explicitly still apply")
	flag.IntVar(&o.runs, "runs", 3, "runs of every scenario; the report gives medians")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long the writers insert, per source, baseline and burst measurement")
	flag.IntVar(&o.writers, "writers", 4, "concurrent writers (one connection each)")
	flag.DurationVar(&o.drainLimit, "drain-limit", 2*time.Minute, "longest wait for delivery after the writers stop")
	flag.Func("scenarios", "comma-separated scenarios to run, of "+strings.Join(allScenarios, ",")+" (default all)", func(v string) error {
		o.scenarios = nil
		for _, name := range strings.Split(v, ",") {
			if !slices.Contains(allScenarios, name) {
				return fmt.Errorf("unknown scenario %q (want some of %s)", name, strings.Join(allScenarios, ","))
			}
			o.scenarios = append(o.scenarios, name)
		}
		return nil
	})
	flag.Func("rates", "latency: target rates of the relay, events/s, comma-separated (default 1000,2000,5000)", rateList(&o.rates))
	flag.Func("baseline-rates", "latency: target rates of the polling baseline and of the floor pipe, events/s, comma-separated (default 2000)", rateList(&o.baselineRates))
	flag.DurationVar(&o.latencyDuration, "latency-duration", 30*time.Second, "latency: how long the writers hold each rate")
	flag.IntVar(&o.latencyWriters, "latency-writers", 16, "latency: writers sharing the pacer; more than -writers because a paced writer waits out each commit")
	flag.IntVar(&o.backlog, "backlog", 1_000_000, "backlog, onetxn: events written before the deliverer starts")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.databaseURL, "database-url", "", "a scratch database with wal_level=logical (its event_bus is truncated); default: start a local cluster")
	flag.StringVar(&o.natsURL, "nats-url", "", "NATS with JetStream; default: start an embedded server")
	flag.StringVar(&o.natsBin, "nats-bin", "", "run this nats-server executable as a child process instead of the embedded server, and measure its CPU")
	flag.StringVar(&o.relayBin, "relay-bin", "", "the eventbus binary; default: go build ./cmd/eventbus into a temp dir")
	flag.Parse()
	if *smoke {
		given := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for name, set := range map[string]func(){
			"runs":             func() { o.runs = 1 },
			"duration":         func() { o.duration = time.Second },
			"latency-duration": func() { o.latencyDuration = time.Second },
			"rates":            func() { o.rates = []float64{1000} },
			"baseline-rates":   func() { o.baselineRates = []float64{1000} },
			"backlog":          func() { o.backlog = 10_000 },
		} {
			if !given[name] {
				set()
			}
		}
	}
	if o.runs < 1 || o.writers < 1 || o.duration <= 0 || o.latencyDuration <= 0 || o.latencyWriters < 1 || o.backlog < 1 {
		fmt.Fprintln(os.Stderr, "eventbus-bench: -runs, -writers, -duration, -latency-duration, -latency-writers and -backlog must be positive")
		os.Exit(2)
	}
	if o.natsURL != "" && o.natsBin != "" {
		fmt.Fprintln(os.Stderr, "eventbus-bench: -nats-url and -nats-bin: give one (-nats-bin starts a server)")
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

// rateList parses a flag of comma-separated positive rates into dst; an
// empty value measures no rate.
func rateList(dst *[]float64) func(string) error {
	return func(v string) error {
		*dst = nil
		if strings.TrimSpace(v) == "" {
			return nil
		}
		for _, f := range strings.Split(v, ",") {
			rate, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || rate <= 0 {
				return fmt.Errorf("not a positive rate: %q", f)
			}
			*dst = append(*dst, rate)
		}
		return nil
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
		for _, name := range allScenarios {
			if !slices.Contains(o.scenarios, name) {
				continue
			}
			if err := scenarioRunners[name](ctx, env, o, rep); err != nil {
				return fmt.Errorf("run %d: %s: %w", i, name, err)
			}
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

// scenarioRunners run one scenario once and add its measurements to the report.
var scenarioRunners = map[string]func(context.Context, *env, options, *report) error{
	"source": func(ctx context.Context, e *env, o options, rep *report) error {
		for _, s := range shapes {
			m, err := sourceScenario(ctx, e, o, s)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			rep.add("source", s, m)
		}
		return nil
	},
	"baseline": func(ctx context.Context, e *env, o options, rep *report) error {
		for _, batch := range []int{100, 1000} {
			for _, s := range shapes {
				m, err := baselineScenario(ctx, e, o, s, batch)
				if err != nil {
					return fmt.Errorf("batch %d, %s: %w", batch, s, err)
				}
				rep.add(fmt.Sprintf("baseline-%d", batch), s, m)
			}
		}
		return nil
	},
	"burst": func(ctx context.Context, e *env, o options, rep *report) error {
		ms, err := burstScenario(ctx, e, o)
		if err != nil {
			return err
		}
		for _, s := range shapes {
			rep.add("burst", s, ms[s])
		}
		if ms, err = floorBurstScenario(ctx, e, o); err != nil {
			return fmt.Errorf("floor pipe: %w", err)
		}
		for _, s := range shapes {
			rep.add("burst-floor", s, ms[s])
		}
		return nil
	},
	"latency":  latencyScenario,
	"webhooks": webhooksScenario,
	"backlog":  backlogScenario,
	"onetxn":   oneTxnScenario,
}

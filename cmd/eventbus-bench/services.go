package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
	"github.com/eventbus/eventbus/schema"
)

// env is what every scenario works against: the database, NATS and the relay
// binary, with the services the bench started itself.
type env struct {
	dbURL, natsURL string
	relayBin       string
	tmp            string        // scratch directory: NATS store, relay build and log
	pool           *pgxpool.Pool // the bench's probes (benchAppName)
	writers        *pgxpool.Pool // the writers' connections (writersAppName)
	cpu            cpuMeter
	nc             *nats.Conn
	js             jetstream.JetStream
	info           machineInfo
	log            *slog.Logger
	closers        []func()
}

// machineInfo describes where the numbers were taken.
type machineInfo struct {
	CPUs     int    `json:"cpus"`
	GOOS     string `json:"goos"`
	GOARCH   string `json:"goarch"`
	Postgres string `json:"postgres"`
	Durable  bool   `json:"postgres_fsync"`
	NATS     string `json:"nats"` // the server's version and where it runs
	// Whose CPU the bench can read from /proc: Postgres's when it runs on
	// this host, NATS's when the bench runs it as a child process.
	PostgresCPU bool `json:"postgres_cpu_measured"`
	NATSCPU     bool `json:"nats_cpu_measured"`
}

func startEnv(ctx context.Context, o options, log *slog.Logger) (_ *env, err error) {
	e := &env{dbURL: o.databaseURL, natsURL: o.natsURL, relayBin: o.relayBin, log: log}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.tmp, err = os.MkdirTemp("", "eventbus-bench-"); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = os.RemoveAll(e.tmp) })

	if e.dbURL == "" {
		// Fast is off: fsync and full page writes stay on, as in production.
		pg, err := pgcluster.Start(ctx, pgcluster.Options{Log: log})
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, func() {
			if err := pg.Stop(); err != nil {
				log.Error("stop postgres", "err", err)
			}
		})
		e.dbURL = pg.URL("postgres")
	}
	natsWhere := "at -nats-url, not measured"
	if e.natsURL == "" {
		ns, err := natsserver.Start(natsserver.Options{StoreDir: filepath.Join(e.tmp, "nats"), Binary: o.natsBin, Log: log})
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, ns.Shutdown)
		e.natsURL = ns.URL()
		natsWhere = "embedded in the bench process, not measured"
		if o.natsBin != "" {
			bin, err := exec.LookPath(o.natsBin)
			if err == nil {
				e.cpu.nats, err = findChild(bin)
			}
			if err != nil {
				return nil, fmt.Errorf("nats-server's pid: %w", err)
			}
			natsWhere = fmt.Sprintf("a child process (%s, pid %d)", bin, e.cpu.nats)
		}
	}
	if e.relayBin == "" {
		if e.relayBin, err = buildRelay(ctx, e.tmp); err != nil {
			return nil, err
		}
	}

	if err := migrate(ctx, e.dbURL, log); err != nil {
		return nil, err
	}
	// Both pools keep their connections for the whole run (pgxpool closes
	// idle ones after 30 minutes): a backend that came and went within a
	// measurement would have its CPU counted as the cluster's, not theirs.
	if e.pool, err = e.connect(ctx, benchAppName, 4); err != nil { // truncate, lag probe, settle, CPU samples
		return nil, err
	}
	if e.writers, err = e.connect(ctx, writersAppName, max(o.writers, o.latencyWriters)); err != nil {
		return nil, err
	}
	e.cpu.pool = e.pool
	if e.cpu.postmaster, err = findPostmaster(ctx, e.pool); err != nil {
		return nil, err
	}
	if e.nc, err = nats.Connect(e.natsURL); err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	e.closers = append(e.closers, e.nc.Close)
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, err
	}

	e.info = machineInfo{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	var fsync string
	if err := e.pool.QueryRow(ctx, "SELECT version(), current_setting('fsync')").Scan(&e.info.Postgres, &fsync); err != nil {
		return nil, fmt.Errorf("postgres version: %w", err)
	}
	e.info.Durable = fsync == "on"
	e.info.NATS = fmt.Sprintf("nats-server %s, %s", e.nc.ConnectedServerVersion(), natsWhere)
	e.info.PostgresCPU, e.info.NATSCPU = e.cpu.postmaster != 0, e.cpu.nats != 0
	if !e.info.PostgresCPU {
		log.Warn("postgres does not run on this host: its CPU is not measured")
	}
	return e, nil
}

// connect opens a pool of at most n connections to the database, named
// app in pg_stat_activity.
func (e *env) connect(ctx context.Context, app string, n int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(e.dbURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	cfg.MaxConns = int32(n)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	e.closers = append(e.closers, pool.Close)
	return pool, nil
}

// withApplicationName returns the connection string dsn, a URL or
// keyword/value pairs, with its application_name set to name.
func withApplicationName(dsn, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " application_name=" + name // a later keyword wins
}

// close stops what startEnv started, last first.
func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

func migrate(ctx context.Context, url string, log *slog.Logger) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := schema.Migrate(ctx, conn, log); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// buildRelay builds ./cmd/eventbus of this module into dir.
func buildRelay(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root (go env GOMOD): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the eventbus module: run from the repository or pass -relay-bin")
	}
	bin := filepath.Join(dir, "eventbus")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/eventbus")
	build.Dir = filepath.Dir(gomod)
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/eventbus: %w\n%s", err, out)
	}
	return bin, nil
}

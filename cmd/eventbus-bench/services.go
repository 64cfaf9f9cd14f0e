package main

import (
	"context"
	"fmt"
	"log/slog"
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
	tmp            string // scratch directory: NATS store, relay build and log
	pool           *pgxpool.Pool
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
	if e.natsURL == "" {
		ns, err := natsserver.Start(natsserver.Options{StoreDir: filepath.Join(e.tmp, "nats"), Log: log})
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, ns.Shutdown)
		e.natsURL = ns.URL()
	}
	if e.relayBin == "" {
		if e.relayBin, err = buildRelay(ctx, e.tmp); err != nil {
			return nil, err
		}
	}

	if err := migrate(ctx, e.dbURL, log); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(e.dbURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	cfg.MaxConns = int32(max(o.writers, o.latencyWriters) + 4) // the larger set of writers, poller, lag probe, truncate
	if e.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	e.closers = append(e.closers, e.pool.Close)
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
	return e, nil
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

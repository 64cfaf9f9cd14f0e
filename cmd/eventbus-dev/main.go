// Command eventbus-dev runs the relay with a local development environment:
// when EVENTBUS_DATABASE_URL is not set it starts a PostgreSQL cluster with
// wal_level=logical (data in .dev/postgres), when EVENTBUS_NATS_URL is not set
// an embedded NATS server with JetStream (data in .dev/nats, fsynced before
// every acknowledgement: sync_interval always); then it runs
// `eventbus migrate` and `eventbus run` with those URLs, and stops the services
// when the relay exits (Ctrl-C).
//
// The services come from package devstack, the same code the tests use.
//
//	eventbus-dev [-bin path/to/eventbus] [-dir .dev]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/eventbus/eventbus/internal/devstack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "eventbus-dev: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	self, _ := os.Executable()
	bin := flag.String("bin", filepath.Join(filepath.Dir(self), "eventbus"), "the eventbus binary to run")
	dir := flag.String("dir", ".dev", "where the local services keep their data")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}

	env := os.Environ()
	dbURL := os.Getenv("EVENTBUS_DATABASE_URL")
	if dbURL == "" {
		pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: filepath.Join(absDir, "postgres"), Log: log})
		if err != nil {
			return err
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				log.Error("stop postgres", "err", err)
			}
		}()
		dbURL = pg.URL("postgres")
		env = append(env, "EVENTBUS_DATABASE_URL="+dbURL)
	}
	natsURL := os.Getenv("EVENTBUS_NATS_URL")
	if natsURL == "" {
		ns, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: filepath.Join(absDir, "nats"), SyncAlways: true, Log: log})
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		natsURL = ns.URL()
		env = append(env, "EVENTBUS_NATS_URL="+natsURL)
	}
	fmt.Fprintf(os.Stderr, "\n  PostgreSQL: %s\n  NATS:       %s\n  try:        psql '%s' -c \"select publish_event('demo.hello','demo','1')\"\n              then watch the relay's log, or subscribe to events.> on NATS\n\n", dbURL, natsURL, dbURL)

	if err := child(ctx, *bin, env, "migrate"); err != nil {
		return err
	}
	return child(ctx, *bin, env, "run")
}

// child runs the eventbus binary and forwards Ctrl-C/SIGTERM to it, so the
// relay stops gracefully before the services do.
func child(ctx context.Context, bin string, env []string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w (build it with: go build -o bin/eventbus ./cmd/eventbus)", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitErr(args[0], err)
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return exitErr(args[0], <-done)
	}
}

func exitErr(what string, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("eventbus %s exited with code %d", what, ee.ExitCode())
	}
	return err
}

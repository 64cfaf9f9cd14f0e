// Command eventbus-dev runs the relay with a local development environment
// (make run): when EVENTBUS_DATABASE_URL is not set it starts a PostgreSQL
// cluster with wal_level=logical (data in .dev/postgres), when
// EVENTBUS_NATS_URL is not set an embedded NATS server with JetStream (data in
// .dev/nats, fsynced before every acknowledgement: sync_interval always);
// then it runs `eventbus migrate` and `eventbus run` with those URLs.
//
// The services listen on the same ports every time (PostgreSQL 54329, NATS
// 42229, HTTP 8080), so URLs exported in another shell stay valid across
// restarts; a port taken by another process is replaced by a free one, with a
// line saying so. The URLs and the admin token are written to .dev/env (mode
// 0600) for `source .dev/env` in another shell.
//
// The monitor (/crm/events) is on: the relay gets EVENTBUS_ADMIN_TOKEN, the
// caller's when set, else one generated on the first run and kept in
// .dev/admin-token (mode 0600). The token is printed when it is generated.
//
// A relay that exits by itself (a crash, kill -9) is restarted with backoff
// while the services keep running, until it crashes five times within a
// minute; Ctrl-C (SIGINT or SIGTERM) stops the relay gracefully, then the
// services.
//
// The services come from packages pgcluster and natsserver, the same code
// the tests use.
//
//	eventbus-dev [-bin path/to/eventbus] [-dir .dev] [-postgres-port 54329] [-nats-port 42229] [-http-port 8080]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
)

// The dev environment's ports when free (see choosePort): numbers unlikely to
// be taken by a PostgreSQL (5432) or NATS (4222) already on the machine.
const (
	defaultPostgresPort = 54329
	defaultNATSPort     = 42229
	defaultHTTPPort     = 8080
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
	dir := flag.String("dir", ".dev", "where the local services keep their data, and .dev/env and .dev/admin-token")
	pgPort := flag.Int("postgres-port", defaultPostgresPort, "PostgreSQL's port when free (0: any free port)")
	natsPort := flag.Int("nats-port", defaultNATSPort, "NATS's port when free (0: any free port)")
	httpPort := flag.Int("http-port", defaultHTTPPort, "the relay's HTTP port when free and EVENTBUS_HTTP_ADDR is unset (0: any free port)")
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

	d := devEnv{dir: *dir, bin: *bin}
	d.databaseURL = os.Getenv("EVENTBUS_DATABASE_URL")
	if d.databaseURL == "" {
		port, err := choosePort("PostgreSQL", *pgPort, log)
		if err != nil {
			return err
		}
		pg, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(absDir, "postgres"), Port: port, Log: log})
		if err != nil {
			return err
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				log.Error("stop postgres", "err", err)
			}
		}()
		d.databaseURL = pg.URL("postgres")
	}
	d.natsURL = os.Getenv("EVENTBUS_NATS_URL")
	if d.natsURL == "" {
		port, err := choosePort("NATS", *natsPort, log)
		if err != nil {
			return err
		}
		ns, err := natsserver.Start(natsserver.Options{StoreDir: filepath.Join(absDir, "nats"), Port: port, SyncAlways: true, Log: log})
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		d.natsURL = ns.URL()
	}
	var httpSet bool
	if d.httpAddr, httpSet = os.LookupEnv("EVENTBUS_HTTP_ADDR"); !httpSet {
		port, err := choosePort("the relay's HTTP", *httpPort, log)
		if err != nil {
			return err
		}
		d.httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	d.metricsAddr = os.Getenv("EVENTBUS_METRICS_ADDR")
	if d.adminToken, d.tokenSource, err = adminToken(os.Getenv("EVENTBUS_ADMIN_TOKEN"), filepath.Join(absDir, "admin-token")); err != nil {
		return err
	}
	if err := d.writeEnvFile(filepath.Join(absDir, "env")); err != nil {
		return err
	}

	env := append(os.Environ(),
		"EVENTBUS_DATABASE_URL="+d.databaseURL,
		"EVENTBUS_NATS_URL="+d.natsURL,
		"EVENTBUS_HTTP_ADDR="+d.httpAddr,
		"EVENTBUS_ADMIN_TOKEN="+d.adminToken,
	)
	st, err := runChild(ctx, command(*bin, env, "migrate"), nil)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	if !st.Success() {
		return fmt.Errorf("eventbus migrate %s", describeExit(st))
	}

	// The banner comes once the relay is ready, so that it is the last
	// thing on the screen and its URLs answer.
	bannerCtx, cancelBanner := context.WithCancel(ctx)
	bannerDone := make(chan struct{})
	go func() {
		defer close(bannerDone)
		notReady, ok := waitReady(bannerCtx, d.httpAddr, time.Minute)
		if ok {
			d.printBanner(os.Stdout, notReady)
		}
	}()
	defer func() { cancelBanner(); <-bannerDone }()

	sup := supervisor{
		command:    func() *exec.Cmd { return command(*bin, env, "run") },
		log:        log,
		backoff:    time.Second,
		maxBackoff: 30 * time.Second,
		crashes:    5,
		window:     time.Minute,
	}
	return sup.run(ctx)
}

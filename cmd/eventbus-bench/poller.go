package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pollerCommand is the hidden sub-command that runs the baseline's poller:
// the bench runs itself with it as a child process, so that the poller's CPU
// is its own process's, apart from the writers' and the subscriber's.
const pollerCommand = "baseline-poller"

// The poller's services come in its environment, not on its command line,
// where any local user could read a password.
const (
	pollerDatabaseEnv = "EVENTBUS_BENCH_POLLER_DATABASE_URL"
	pollerNATSEnv     = "EVENTBUS_BENCH_POLLER_NATS_URL"
)

// pollerMain is the child's main: poll until SIGTERM. It writes "ready" on
// stdout once connected, and its error on stderr.
func pollerMain(args []string) int {
	fs := flag.NewFlagSet(pollerCommand, flag.ContinueOnError)
	batch := fs.Int("batch", 1000, "rows per claim")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runPoller(ctx, os.Getenv(pollerDatabaseEnv), os.Getenv(pollerNATSEnv), *batch, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", pollerCommand, err)
		return 1
	}
	return 0
}

// runPoller connects with a pool of its own (application_name
// baselineAppName) and a NATS connection of its own, says so on ready and
// polls until ctx ends.
func runPoller(ctx context.Context, dbURL, natsURL string, batch int, ready io.Writer) error {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = baselineAppName
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(ready, "ready"); err != nil {
		return err
	}
	return poll(ctx, pool, js, batch)
}

// startPoller runs the baseline's poller, batch rows per claim, as a child
// process and returns once it is connected.
func startPoller(ctx context.Context, e *env, batch int) (*child, error) {
	return startSelf(ctx, "baseline poller", filepath.Join(e.tmp, "baseline-poller.log"),
		[]string{pollerDatabaseEnv + "=" + e.dbURL, pollerNATSEnv + "=" + e.natsURL},
		pollerCommand, "-batch", strconv.Itoa(batch))
}

// startSelf runs the bench's own executable with args (a hidden
// sub-command) and env added to its environment, as a child process that
// logs to logPath, and returns once the child writes "ready" on its stdout.
func startSelf(ctx context.Context, name, logPath string, env []string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("the bench's own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = w
	// A bench killed without its cleanup takes its child with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := startChild(name, cmd, logPath)
	w.Close() // the child has its own end
	if err != nil {
		return nil, err
	}

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n') // EOF once the child exits
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) == "ready" {
			return p, nil
		}
		if s != "" { // not EOF: the child is still running
			_ = p.cmd.Process.Kill()
		}
		return nil, p.exited(<-p.done)
	case err := <-p.done:
		return nil, p.exited(err)
	case <-ctx.Done():
		_ = p.stop()
		return nil, ctx.Err()
	case <-time.After(time.Minute):
		_ = p.stop()
		return nil, fmt.Errorf("%s %w", name, errNotReady)
	}
}

// pollerDeliverer is what the CPU meter measures of a running poller.
func pollerDeliverer(p *child) deliverer { return deliverer{pid: p.pid(), appName: baselineAppName} }

// stopWith stops the child (a poller, a relay) and returns err, the
// measurement's outcome, with the child's own error attached: a child that
// failed is why the events never arrived.
func stopWith(p *child, err error) error {
	if perr := p.stop(); perr != nil {
		if err == nil {
			return perr
		}
		return fmt.Errorf("%w (%v)", err, perr)
	}
	return err
}

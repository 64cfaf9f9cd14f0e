package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/eventbus/eventbus/internal/devstack/serverlog"
)

// ErrNotInstalled means no PostgreSQL server binaries (initdb, pg_ctl,
// postgres) were found on this machine.
var ErrNotInstalled = errors.New("PostgreSQL server binaries not found; install them: apt-get install postgresql")

// portInUseError marks a start that failed because another process holds
// the port.
type portInUseError struct{ error }

func (e portInUseError) Unwrap() error { return e.error }

// Options configures Start.
type Options struct {
	// DataDir is the cluster directory: created with initdb when it holds no
	// cluster, reused when it does. Empty means a new temporary directory that
	// Stop removes.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Fast turns off fsync and full_page_writes. A crash of the machine can
	// then corrupt the cluster: for throwaway test clusters only.
	// synchronous_commit stays on: logical decoding only reads flushed WAL, so
	// turning it off would delay every event by up to wal_writer_delay.
	Fast bool
	// BinDir holds initdb, pg_ctl and postgres; empty means the machine's own
	// (pg_config --bindir, else the newest /usr/lib/postgresql/*/bin). Tests
	// of other server versions point it at scripts/install-postgres.sh's.
	BinDir string
	// Settings are extra postgresql.conf lines ("name = value"), written
	// after this package's own into devstack.conf at every start, so they win.
	Settings []string
	// Log receives a line per state change; nil discards.
	Log *slog.Logger
}

// Cluster is a PostgreSQL cluster run by pg_ctl. Its methods are safe for
// concurrent use.
type Cluster struct {
	binDir  string // initdb, pg_ctl, postgres
	dataDir string
	logPath string
	sockDir string // short private directory for the unix socket; Stop removes it
	tempDir string // set when DataDir was empty; Stop removes it
	port    int
	run     *osUser // the OS user that runs the server when we are root; nil otherwise
	log     *slog.Logger
	fast    bool

	mu       sync.Mutex
	settings []string // Options.Settings, then what StartStandby adds
	// standbySlots are the physical slots of the standbys StartStandby made
	// of this server: its synchronized_standby_slots.
	standbySlots []string
	stopped      bool
	killed       bool // by Kill: no server left for pg_ctl to stop
}

// Start starts a cluster in opts.DataDir, creating it first when the
// directory holds none, and returns once it accepts connections.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = findBinDir(ctx); err != nil {
			return nil, err
		}
	} else if !isExecutable(filepath.Join(binDir, "initdb")) {
		return nil, fmt.Errorf("postgres: no initdb in %s", binDir)
	}
	run, err := serverUser()
	if err != nil {
		return nil, err
	}
	p := &Cluster{binDir: binDir, run: run, log: opts.Log, fast: opts.Fast, settings: slices.Clone(opts.Settings)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			p.removeDirs()
		}
	}()

	if err := p.prepareDirs(opts.DataDir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(p.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := p.initdb(ctx, opts.Fast); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("postgres: look for a cluster in %s: %w", p.dataDir, err)
	}
	if err := p.includeConfig(); err != nil {
		return nil, err
	}

	// A free port can be taken by someone else between our probe and the
	// server's bind: pick another one and try again.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		p.port = opts.Port
		if p.port == 0 {
			if p.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if err := p.writeConfig(); err != nil {
			return nil, err
		}
		err = p.pgctl(ctx, "start")
		if err == nil {
			break
		}
		if opts.Port != 0 || attempt == attempts || !errors.As(err, new(portInUseError)) {
			return nil, err
		}
	}
	p.log.Info("postgres started", "port", p.port, "data_dir", p.dataDir, "bin_dir", p.binDir)
	return p, nil
}

// URL returns the connection URL of a database on this cluster, for the
// superuser postgres (no password: the cluster trusts local connections).
func (p *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// BinDir returns the directory of the server binaries this cluster runs.
func (p *Cluster) BinDir() string { return p.binDir }

// Port returns the TCP port the server listens on.
func (p *Cluster) Port() int { return p.port }

// DataDir returns the cluster directory.
func (p *Cluster) DataDir() string { return p.dataDir }

// LogPath returns the server's log file.
func (p *Cluster) LogPath() string { return p.logPath }

// CreateDatabase creates a database on this cluster and returns its URL.
func (p *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	return CreateDatabase(ctx, p.URL("postgres"), name)
}

// Restart stops the server, disconnecting every client, and starts it again
// on the same port and data (pg_ctl restart -m fast). It returns once the
// server accepts connections again.
func (p *Cluster) Restart(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.killed {
		return errors.New("postgres: restart: stopped")
	}
	if err := p.pgctl(ctx, "restart"); err != nil {
		return err
	}
	p.log.Info("postgres restarted", "port", p.port)
	return nil
}

// Stop stops the server (pg_ctl stop -m fast) and removes the temporary
// directories made for it. A Cluster cannot be started again; to resume a
// cluster, call Start with the same DataDir (and Port). Calling Stop more
// than once is harmless.
func (p *Cluster) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	p.stopped = true
	var err error
	if !p.killed {
		err = p.pgctl(context.Background(), "stop")
	}
	p.removeDirs()
	if err != nil {
		return err
	}
	p.log.Info("postgres stopped", "port", p.port)
	return nil
}

// Promote ends recovery of a standby (pg_ctl promote -w): it returns once
// the server accepts writes.
func (p *Cluster) Promote(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.killed {
		return errors.New("postgres: promote: not running")
	}
	if err := p.pgctl(ctx, "promote"); err != nil {
		return err
	}
	p.log.Info("postgres promoted", "port", p.port)
	return nil
}

// prepareDirs settles where the cluster, its log and its socket live, and
// makes them usable by the server's OS user.
func (p *Cluster) prepareDirs(dataDir string) error {
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "eventbus-pg-")
		if err != nil {
			return fmt.Errorf("postgres: create data dir: %w", err)
		}
		p.tempDir = tmp
		if err := os.Chmod(tmp, 0o755); err != nil {
			return fmt.Errorf("postgres: create data dir: %w", err)
		}
		dataDir = filepath.Join(tmp, "data")
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("postgres: data dir: %w", err)
	}
	p.dataDir = dataDir
	p.logPath = dataDir + ".log"

	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return fmt.Errorf("postgres: create data dir: %w", err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("postgres: create data dir: %w", err)
	}
	if err := p.run.checkSearchable(filepath.Dir(dataDir)); err != nil {
		return fmt.Errorf("postgres: data dir %s: %w", dataDir, err)
	}
	if err := p.run.chown(dataDir); err != nil {
		return fmt.Errorf("postgres: data dir: %w", err)
	}

	// Created by us so that a root-owned parent need not be writable by the
	// server's user; pg_ctl appends to it.
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("postgres: create log file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("postgres: create log file: %w", err)
	}
	if err := p.run.chown(p.logPath); err != nil {
		return fmt.Errorf("postgres: log file: %w", err)
	}

	// A unix socket path may not exceed 107 bytes, which a test's temp dir
	// easily does: the socket gets a short directory of its own.
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	if p.sockDir, err = os.MkdirTemp(base, "pgsock-"); err != nil {
		return fmt.Errorf("postgres: create socket dir: %w", err)
	}
	if err := os.Chmod(p.sockDir, 0o755); err != nil {
		return fmt.Errorf("postgres: create socket dir: %w", err)
	}
	if err := p.run.chown(p.sockDir); err != nil {
		return fmt.Errorf("postgres: socket dir: %w", err)
	}
	return nil
}

func (p *Cluster) removeDirs() {
	for _, dir := range []string{p.sockDir, p.tempDir} {
		if dir != "" {
			if err := os.RemoveAll(dir); err != nil {
				p.log.Warn("postgres: remove temp dir", "dir", dir, "err", err)
			}
		}
	}
}

func (p *Cluster) initdb(ctx context.Context, fast bool) error {
	args := []string{"-D", p.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if fast {
		args = append(args, "--no-sync")
	}
	if out, err := p.command(ctx, "initdb", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("postgres: initdb %s: %w\n%s", p.dataDir, err, serverlog.Tail(out))
	}
	p.log.Info("postgres cluster created", "data_dir", p.dataDir)
	return nil
}

// pgctl runs pg_ctl start, restart, stop or promote and waits for it to
// finish.
func (p *Cluster) pgctl(ctx context.Context, action string) error {
	args := []string{action, "-D", p.dataDir, "-w", "-t", "60"}
	switch action {
	case "start", "restart":
		// -l also keeps the server off pg_ctl's output, which we wait on.
		args = append(args, "-l", p.logPath)
	}
	switch action {
	case "restart", "stop":
		args = append(args, "-m", "fast")
	}
	logOffset := serverlog.End(p.logPath)
	out, err := p.command(ctx, "pg_ctl", args...).CombinedOutput()
	if err == nil {
		return nil
	}
	serverLog := serverlog.ReadFrom(p.logPath, logOffset)
	err = fmt.Errorf("postgres: pg_ctl %s (port %d): %w\n%s%s", action, p.port, err, serverlog.Tail(out), serverlog.Tail(serverLog))
	if bytes.Contains(serverLog, []byte("Address already in use")) {
		err = portInUseError{err}
	}
	return err
}

func (p *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, name), args...)
	// The server's user may not be allowed into our working directory, and
	// English messages are what pgctl looks for.
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if p.run != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.run.credential()}
	}
	return cmd
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

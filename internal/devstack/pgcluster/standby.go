package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/internal/devstack/serverlog"
)

// StandbyOptions configures StartStandby.
type StandbyOptions struct {
	// Slot is the physical replication slot created on the primary for the
	// standby; empty means "devstack_standby". Each standby of a primary
	// needs its own.
	Slot string
	// Fast is Options.Fast for the standby.
	Fast bool
	// Settings are extra postgresql.conf lines for the standby, after the
	// ones StartStandby writes.
	Settings []string
	// Log receives a line per state change; nil discards.
	Log *slog.Logger
}

// StartStandby makes a hot standby of primary (PostgreSQL 17 or newer for
// slot synchronization) in a new temporary directory, starts it, and returns
// once it streams WAL from the primary. The standby keeps the primary's
// failover logical slots in step (sync_replication_slots); the primary lists
// the standby's physical slot in synchronized_standby_slots, so a logical
// walsender never sends WAL the standby has not flushed: a promoted standby
// has every transaction the primary's logical clients received.
//
// The copy is a base backup made with the low-level backup API while the
// primary keeps serving (pg_backup_start, copy of the data directory without
// WAL and the transient directories, pg_backup_stop's backup_label), as
// pg_basebackup does: the npm packages of the server carry no pg_basebackup.
// The standby streams the WAL from the backup's start on, which the physical
// slot, created before the backup starts, keeps on the primary.
func StartStandby(ctx context.Context, primary *Cluster, opts StandbyOptions) (_ *Cluster, err error) {
	slot := opts.Slot
	if slot == "" {
		slot = "devstack_standby"
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := pgx.Connect(ctx, primary.URL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("standby: connect to the primary: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, slot); err != nil {
		return nil, fmt.Errorf("standby: create physical slot %q on the primary: %w", slot, err)
	}

	tmp, err := os.MkdirTemp("", "eventbus-pg-standby-")
	if err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	dataDir := filepath.Join(tmp, "data")
	if err := baseBackup(ctx, conn, primary, dataDir); err != nil {
		return nil, err
	}

	settings := []string{
		"primary_conninfo = " + quote(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres application_name=%s", primary.Port(), slot)),
		"primary_slot_name = " + quote(slot),
		"hot_standby = on",
		// The primary keeps the catalog rows the synchronized slots need.
		"hot_standby_feedback = on",
		"sync_replication_slots = on",
		// Without it a promotion waits up to 5 s for the startup process to
		// stop retrying the lost primary.
		"wal_retrieve_retry_interval = '100ms'",
	}
	standby, err := Start(ctx, Options{
		DataDir:  dataDir,
		BinDir:   primary.BinDir(),
		Fast:     opts.Fast,
		Settings: append(settings, opts.Settings...),
		Log:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	standby.tempDir = tmp // Stop removes it
	defer func() {
		if err != nil {
			_ = standby.Stop()
		}
	}()

	if err := primary.addSynchronizedStandbySlot(ctx, slot); err != nil {
		return nil, err
	}
	// Streaming: the primary's walsender has taken the slot.
	for {
		var active bool
		if err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active); err != nil {
			return nil, fmt.Errorf("standby: look up slot %q: %w", slot, err)
		}
		if active {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("standby: not streaming from the primary: %w\n%s", ctx.Err(), serverlog.Tail(serverlog.ReadFrom(standby.LogPath(), 0)))
		case <-time.After(20 * time.Millisecond):
		}
	}
	log.Info("postgres standby streaming", "port", standby.Port(), "primary_port", primary.Port(), "slot", slot)
	return standby, nil
}

// baseBackup copies primary's data directory to dataDir between
// pg_backup_start and pg_backup_stop on conn, and writes the backup_label
// (and tablespace_map) pg_backup_stop returns, and standby.signal.
func baseBackup(ctx context.Context, conn *pgx.Conn, primary *Cluster, dataDir string) error {
	// fast: an immediate checkpoint instead of a spread one.
	if _, err := conn.Exec(ctx, `SELECT pg_backup_start('devstack', true)`); err != nil {
		return fmt.Errorf("standby: pg_backup_start: %w", err)
	}
	copyErr := copyDataDir(primary.DataDir(), dataDir, primary.run)
	// Stopped whatever the copy did: the backup holds the primary in
	// full-page-writes mode until then. No archive to wait for.
	var label, spcmap string
	stopErr := conn.QueryRow(ctx, `SELECT labelfile, spcmapfile FROM pg_backup_stop(false)`).Scan(&label, &spcmap)
	if copyErr != nil {
		return fmt.Errorf("standby: copy %s: %w", primary.DataDir(), copyErr)
	}
	if stopErr != nil {
		return fmt.Errorf("standby: pg_backup_stop: %w", stopErr)
	}
	files := map[string]string{"backup_label": label, "standby.signal": ""}
	if spcmap != "" {
		files["tablespace_map"] = spcmap
	}
	for name, content := range files {
		path := filepath.Join(dataDir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return fmt.Errorf("standby: %w", err)
		}
		if err := primary.run.chown(path); err != nil {
			return fmt.Errorf("standby: %w", err)
		}
	}
	return nil
}

// Left out of a base backup, as the documentation of the low-level API and
// pg_basebackup say: the contents of these directories (WAL comes from the
// stream; the rest is rebuilt or transient), and these files anywhere.
var (
	skipContents = []string{"pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans"}
	skipFiles    = []string{"postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "standby.signal", "recovery.signal", "pg_internal.init", "current_logfiles"}
)

// copyDataDir copies a running cluster's directory src to dst, which must
// not exist, giving everything to owner. Files removed while the copy runs
// are left out: the server was done with them, and WAL replay recreates what
// it needs.
func copyDataDir(src, dst string, owner *osUser) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			if err := owner.chown(target); err != nil {
				return err
			}
			if slices.Contains(skipContents, rel) {
				if rel == "pg_wal" {
					for _, sub := range []string{"archive_status", "summaries"} {
						if err := os.Mkdir(filepath.Join(target, sub), 0o700); err != nil {
							return err
						}
						if err := owner.chown(filepath.Join(target, sub)); err != nil {
							return err
						}
					}
				}
				return filepath.SkipDir
			}
			if strings.HasPrefix(d.Name(), "pgsql_tmp") {
				return filepath.SkipDir
			}
			return nil
		}
		if slices.Contains(skipFiles, d.Name()) && (filepath.Dir(rel) == "." || d.Name() == "pg_internal.init") {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file (tablespaces are not supported)", path)
		}
		return copyFile(path, target, owner)
	})
}

func copyFile(src, dst string, owner *osUser) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return owner.chown(dst)
}

// addSynchronizedStandbySlot adds slot to the primary's
// synchronized_standby_slots in devstack.conf and reloads the configuration.
// Not ALTER SYSTEM: postgresql.auto.conf is copied into every later standby,
// which once promoted would wait for a slot it does not have.
func (p *Cluster) addSynchronizedStandbySlot(ctx context.Context, slot string) error {
	p.mu.Lock()
	p.standbySlots = append(p.standbySlots, slot)
	want := strings.Join(p.standbySlots, ",")
	p.settings = slices.DeleteFunc(p.settings, func(s string) bool { return strings.HasPrefix(s, "synchronized_standby_slots ") })
	p.settings = append(p.settings, "synchronized_standby_slots = "+quote(want))
	err := p.writeConfig()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.reload(ctx, "synchronized_standby_slots", want)
}

// reload makes the server read its configuration again and returns once
// new sessions see setting at value.
func (p *Cluster) reload(ctx context.Context, setting, value string) error {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return fmt.Errorf("postgres: reload: %w", err)
	}
	_, err = conn.Exec(ctx, `SELECT pg_reload_conf()`)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("postgres: reload: %w", err)
	}
	// The postmaster reads the files when it gets to the signal; a session
	// started after that has the new value.
	for {
		conn, err := pgx.Connect(ctx, p.URL("postgres"))
		if err != nil {
			return fmt.Errorf("postgres: reload: %w", err)
		}
		var got string
		err = conn.QueryRow(ctx, `SELECT current_setting($1)`, setting).Scan(&got)
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("postgres: reload: %w", err)
		}
		if got == value {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: reload: %s is %q, want %q: %w", setting, got, value, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ServerVersionNum returns the server_version_num of the binaries in binDir
// (postgres --version), e.g. 170010, and the bin dir; an empty binDir means
// the machine's own, as for Start. Tests use it to skip on servers
// too old for what they test before starting any.
func ServerVersionNum(ctx context.Context, binDir string) (int, string, error) {
	if binDir == "" {
		var err error
		if binDir, err = findBinDir(ctx); err != nil {
			return 0, "", err
		}
	}
	v, err := serverVersionNum(ctx, binDir)
	return v, binDir, err
}

func serverVersionNum(ctx context.Context, binDir string) (int, error) {
	out, err := (&Cluster{binDir: binDir}).command(ctx, "postgres", "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("postgres --version: %w", err)
	}
	// "postgres (PostgreSQL) 17.10" or "… 15.8 (Debian 15.8-0+deb12u1)"
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		return 0, fmt.Errorf("postgres --version: unexpected %q", out)
	}
	major, minor, _ := strings.Cut(fields[2], ".")
	ma, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("postgres --version: unexpected %q", out)
	}
	mi, _ := strconv.Atoi(strings.TrimRightFunc(minor, func(r rune) bool { return r < '0' || r > '9' }))
	return ma*10000 + mi, nil
}

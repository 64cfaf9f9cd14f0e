package schema

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded SQL file, migrations/<version>_<name>.sql.
type migration struct {
	version int
	name    string
	sql     string
}

var migrationFileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// loadMigrations returns the migrations in fsys (a directory of SQL files)
// ordered by version. Versions must be unique and file names well formed, so
// that a misnamed file fails every test instead of being skipped silently.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	seen := make(map[int]string)
	for _, e := range entries {
		m := migrationFileName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if version == 0 {
			return nil, fmt.Errorf("migration file %q: versions start at 0001", e.Name())
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migration files %q and %q share version %d", other, e.Name(), version)
		}
		seen[version] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: version, name: m[2], sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// embeddedMigrations returns the migrations built into the binary.
func embeddedMigrations() ([]migration, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return loadMigrations(sub)
}

// migrateLockKey is the pg_advisory_lock key that serializes Migrate runs on
// one database: "eventbus" in ASCII. Advisory locks are per database.
const migrateLockKey int64 = 0x6576656e74627573

// The statements Migrate runs outside a migration's transaction name the
// built-ins they call with their schema: the session's search_path may have
// public, where a planted pg_advisory_lock(text) would win (see pinnedTx).
const (
	lockSQL   = `SELECT pg_catalog.pg_advisory_lock($1)`
	unlockSQL = `SELECT pg_catalog.pg_advisory_unlock($1)`
)

const createTrackingTableSQL = `CREATE TABLE IF NOT EXISTS public.eventbus_schema_migrations (
  version int PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT pg_catalog.now()
)`

const appliedVersionsSQL = `SELECT version FROM public.eventbus_schema_migrations`

const recordMigrationSQL = `INSERT INTO public.eventbus_schema_migrations (version, name) VALUES ($1, $2)`

// Migrate applies pending migrations under an advisory lock; idempotent, safe concurrently.
//
// It holds a session-level advisory lock on conn for the whole run (so conn
// must be a direct connection, not one behind a transaction-mode pooler),
// creates the tracking table public.eventbus_schema_migrations when missing,
// and applies each migration not recorded there in its own transaction,
// together with its tracking row. It returns how many migrations it applied;
// on error, how many it applied before the failing one, which was rolled back.
// log may be nil.
func Migrate(ctx context.Context, conn *pgx.Conn, log *slog.Logger) (applied int, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ms, err := embeddedMigrations()
	if err != nil {
		return 0, err
	}
	return migrate(ctx, conn, log, ms)
}

// migrate is Migrate with the migrations given; ms is ordered and not empty.
func migrate(ctx context.Context, conn *pgx.Conn, log *slog.Logger, ms []migration) (applied int, err error) {
	if _, err := conn.Exec(ctx, lockSQL, migrateLockKey); err != nil {
		return 0, fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; if the connection is gone, so is the lock.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(unlockCtx, unlockSQL, migrateLockKey); uerr != nil && err == nil {
			err = fmt.Errorf("release migration lock: %w", uerr)
		}
	}()

	if _, err := conn.Exec(ctx, createTrackingTableSQL); err != nil {
		return 0, fmt.Errorf("create table eventbus_schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, appliedVersionsSQL)
	if err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}
	done := make(map[int]bool, len(versions))
	newest := 0 // highest version recorded in the database
	for _, v := range versions {
		done[int(v)] = true
		newest = max(newest, int(v))
	}
	latest := ms[len(ms)-1].version // highest version in this binary
	if newest > latest {
		log.Warn("database has migrations newer than this binary", "database_version", newest, "binary_version", latest)
	}

	for _, m := range ms {
		if done[m.version] {
			continue
		}
		start := time.Now()
		if err := apply(ctx, conn, m); err != nil {
			return applied, err
		}
		applied++
		log.Info("applied migration", "version", m.version, "name", m.name, "duration", time.Since(start).Round(time.Millisecond).String())
	}
	log.Info("schema up to date", "applied", applied, "version", latest)
	return applied, nil
}

// apply runs one migration and records it, in one transaction whose
// search_path is pg_catalog, pg_temp: the migrations name every object of
// theirs with its schema, and their DO blocks, which run as the migrating
// role, call built-ins only.
func apply(ctx context.Context, conn *pgx.Conn, m migration) error {
	err := pinnedTx(ctx, conn, func(tx pgx.Tx) error {
		// No arguments: pgx sends the file with the simple protocol, so it
		// may hold many statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, recordMigrationSQL, m.version, m.name)
		return err
	})
	if err != nil {
		return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
	}
	return nil
}

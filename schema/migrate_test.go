package schema

import (
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmbeddedMigrations(t *testing.T) {
	ms, err := embeddedMigrations()
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for i, m := range ms {
		assert.Equal(t, i+1, m.version, "migration versions are 1, 2, 3… without gaps (%s)", m.name)
		assert.NotEmpty(t, m.sql, "migration %d is empty", m.version)
	}
}

func TestLoadMigrationsRejectsBadFiles(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"bad name":          {"0001_ok.sql": {}, "2_short.sql": {}},
		"not sql":           {"0001_ok.sql": {}, "README.md": {}},
		"duplicate version": {"0001_a.sql": {}, "0001_b.sql": {}},
		"version zero":      {"0000_zero.sql": {}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadMigrations(fsys)
			require.Error(t, err)
		})
	}

	ms, err := loadMigrations(fstest.MapFS{
		"0002_b.sql": {Data: []byte("SELECT 2")},
		"0001_a.sql": {Data: []byte("SELECT 1")},
	})
	require.NoError(t, err)
	require.Len(t, ms, 2)
	assert.Equal(t, migration{version: 1, name: "a", sql: "SELECT 1"}, ms[0])
	assert.Equal(t, migration{version: 2, name: "b", sql: "SELECT 2"}, ms[1])
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	ms, err := embeddedMigrations()
	require.NoError(t, err)
	conn := connect(t, newDB(t))

	applied, err := Migrate(t.Context(), conn, testLogger(t))
	require.NoError(t, err)
	assert.Equal(t, len(ms), applied, "first run applies every migration")

	applied, err = Migrate(t.Context(), conn, testLogger(t))
	require.NoError(t, err)
	assert.Zero(t, applied, "second run applies nothing")

	var rows int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM public.eventbus_schema_migrations`).Scan(&rows))
	assert.Equal(t, len(ms), rows)
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ms, err := embeddedMigrations()
	require.NoError(t, err)
	dbURL := newDB(t)

	const runs = 3
	conns := make([]*pgx.Conn, runs)
	for i := range conns {
		conns[i] = connect(t, dbURL)
	}
	applied := make([]int, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			applied[i], errs[i] = Migrate(t.Context(), conns[i], testLogger(t))
		})
	}
	wg.Wait()

	total := 0
	for i := range runs {
		require.NoError(t, errs[i], "run %d", i)
		total += applied[i]
	}
	assert.Equal(t, len(ms), total, "each migration applied exactly once across the runs: %v", applied)

	var rows, versions int
	require.NoError(t, conns[0].QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT version) FROM public.eventbus_schema_migrations`).Scan(&rows, &versions))
	assert.Equal(t, len(ms), rows)
	assert.Equal(t, len(ms), versions)
}

// A database whose objects are all there but whose tracking table is gone (or
// which was set up by hand from the SQL files) migrates cleanly: every
// statement is re-runnable.
func TestMigrateReappliesOverExistingObjects(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	_, err := conn.Exec(t.Context(), `DROP TABLE public.eventbus_schema_migrations`)
	require.NoError(t, err)

	ms, err := embeddedMigrations()
	require.NoError(t, err)
	applied, err := Migrate(t.Context(), conn, testLogger(t))
	require.NoError(t, err)
	assert.Equal(t, len(ms), applied)
}

func TestMigrateFailureRollsBackAndReleasesLock(t *testing.T) {
	t.Parallel()
	dbURL := newDB(t)
	conn := connect(t, dbURL)
	ms, err := embeddedMigrations()
	require.NoError(t, err)
	broken := migration{
		version: 9999,
		name:    "broken",
		sql:     `CREATE TABLE public.half_done (id int); SELECT 1/0;`,
	}

	applied, err := migrate(t.Context(), conn, testLogger(t), append(ms, broken))
	require.ErrorContains(t, err, "migration 9999_broken")
	assert.Equal(t, len(ms), applied, "the migrations before the broken one are applied")

	var tracked, halfDone bool
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT
		EXISTS (SELECT 1 FROM public.eventbus_schema_migrations WHERE version = 9999),
		to_regclass('public.half_done') IS NOT NULL`).Scan(&tracked, &halfDone))
	assert.False(t, tracked, "the broken migration is not recorded")
	assert.False(t, halfDone, "the broken migration's statements are rolled back")

	var locked bool
	other := connect(t, dbURL)
	require.NoError(t, other.QueryRow(t.Context(), `SELECT pg_try_advisory_lock($1)`, migrateLockKey).Scan(&locked))
	assert.True(t, locked, "the migration lock is released after a failure")
}

package devstack_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack"
	"github.com/eventbus/eventbus/internal/testenv"
)

// These tests drive devstack directly; testenv.Main adds the goroutine leak
// check, which also covers the embedded NATS server after Shutdown.
func TestMain(m *testing.M) { testenv.Main(m) }

// reachableTempDir returns a temp dir that the OS user postgres can enter
// when the tests run as root (t.TempDir's parent is 0700).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devstack-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { require.NoError(t, os.RemoveAll(dir)) })
	return dir
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dataDir := filepath.Join(reachableTempDir(t), "pg", "data")

	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: dataDir, Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pg.Stop()) })
	require.NotZero(t, pg.Port())
	require.Equal(t, "postgres://postgres@127.0.0.1:"+strconv.Itoa(pg.Port())+"/app?sslmode=disable", pg.URL("app"))

	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	require.NoError(t, err)
	var walLevel string
	require.NoError(t, conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel))
	require.Equal(t, "logical", walLevel)
	require.NoError(t, conn.Close(ctx))

	appURL, err := pg.CreateDatabase(ctx, "app")
	require.NoError(t, err)
	require.Equal(t, pg.URL("app"), appURL)
	conn, err = pgx.Connect(ctx, appURL)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
	require.NoError(t, err)

	port := pg.Port()
	require.NoError(t, pg.Restart(ctx))
	require.Equal(t, port, pg.Port())
	require.Error(t, conn.Ping(ctx), "a connection from before the restart is cut")
	_ = conn.Close(ctx)
	conn, err = pgx.Connect(ctx, appURL)
	require.NoError(t, err, "reconnect after restart")
	require.NoError(t, conn.Close(ctx))

	// Stopping removes nothing of the cluster: starting on the same data dir
	// and port brings the database back.
	require.NoError(t, pg.Stop())
	require.NoError(t, pg.Stop(), "stop is idempotent")
	require.Error(t, pg.Restart(ctx), "a stopped Postgres stays stopped")

	pg2, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: dataDir, Port: port, Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pg2.Stop()) })
	conn, err = pgx.Connect(ctx, appURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n))
	require.Equal(t, 1, n)
}

func TestStartPostgresPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()

	_, err = devstack.StartPostgres(t.Context(), devstack.PostgresOptions{Port: l.Addr().(*net.TCPAddr).Port, Fast: true})
	require.Error(t, err)
	require.ErrorContains(t, err, "Address already in use", "the error carries the server log")
}

func TestDropDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pg.Stop()) })

	dbURL, err := pg.CreateDatabase(ctx, "busy")
	require.NoError(t, err)

	// A database with a client and a streaming replication slot.
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE PUBLICATION pub FOR ALL TABLES")
	require.NoError(t, err)
	repl, err := pgconn.Connect(ctx, dbURL+"&replication=database")
	require.NoError(t, err)
	defer repl.Close(ctx)
	_, err = pglogrepl.CreateReplicationSlot(ctx, repl, "slot", "pgoutput", pglogrepl.CreateReplicationSlotOptions{})
	require.NoError(t, err)
	require.NoError(t, pglogrepl.StartReplication(ctx, repl, "slot", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'pub'"},
	}))

	serverURL := pg.URL("postgres")
	require.NoError(t, devstack.DropDatabase(ctx, serverURL, "busy"))
	require.NoError(t, devstack.DropDatabase(ctx, serverURL, "busy"), "dropping a missing database is harmless")

	admin, err := pgx.Connect(ctx, serverURL)
	require.NoError(t, err)
	defer admin.Close(ctx)
	var dbs, slots int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'busy'").Scan(&dbs))
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots))
	require.Zero(t, dbs)
	require.Zero(t, slots)
}

func TestCreateDatabaseRejectsNonURL(t *testing.T) {
	t.Parallel()
	_, err := devstack.CreateDatabase(context.Background(), "host=127.0.0.1 user=postgres", "x")
	require.ErrorContains(t, err, "postgres://")
}

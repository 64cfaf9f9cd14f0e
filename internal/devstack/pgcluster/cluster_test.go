package pgcluster_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
	"github.com/eventbus/eventbus/internal/testenv"
)

// These tests drive pgcluster directly (none uses testenv's shared cluster,
// which testenv.Main would stop). goleak checks that no goroutine outlives
// them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reachableTempDir returns a temp dir that the OS user postgres can enter
// when the tests run as root (t.TempDir's parent is 0700).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { require.NoError(t, os.RemoveAll(dir)) })
	return dir
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dataDir := filepath.Join(reachableTempDir(t), "pg", "data")

	pg, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dataDir, Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
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
	require.Error(t, pg.Restart(ctx), "a stopped Cluster stays stopped")

	pg2, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dataDir, Port: port, Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
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

	_, err = pgcluster.Start(t.Context(), pgcluster.Options{Port: l.Addr().(*net.TCPAddr).Port, Fast: true})
	require.Error(t, err)
	require.ErrorContains(t, err, "Address already in use", "the error carries the server log")
}

package pgcluster_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
	"github.com/eventbus/eventbus/internal/testenv"
)

func TestDropDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg, err := pgcluster.Start(ctx, pgcluster.Options{Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
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
	require.NoError(t, pgcluster.DropDatabase(ctx, serverURL, "busy"))
	require.NoError(t, pgcluster.DropDatabase(ctx, serverURL, "busy"), "dropping a missing database is harmless")

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
	_, err := pgcluster.CreateDatabase(context.Background(), "host=127.0.0.1 user=postgres", "x")
	require.ErrorContains(t, err, "postgres://")
}

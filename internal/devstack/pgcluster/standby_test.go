package pgcluster_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack/pgcluster"
	"github.com/eventbus/eventbus/internal/testenv"
)

// A standby made by StartStandby replicates the primary, keeps a failover
// slot of it in step, and once the primary is killed and the standby
// promoted, takes writes and has the slot.
func TestStandbyPromotedAfterKillHasTheFailoverSlot(t *testing.T) {
	t.Parallel()
	testenv.RequirePostgres(t, 170000)
	ctx := t.Context()
	primary, err := pgcluster.Start(ctx, pgcluster.Options{
		Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t),
		Settings: []string{"application_name = 'devstack_settings'"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, primary.Stop()) })
	standby := testenv.NewStandby(t, primary, "standby1")

	p := connect(t, primary.URL("postgres"))
	var app, syncSlots string
	require.NoError(t, p.QueryRow(ctx, `SELECT current_setting('application_name'), current_setting('synchronized_standby_slots')`).Scan(&app, &syncSlots))
	require.Equal(t, "devstack_settings", app, "Options.Settings are in effect")
	require.Equal(t, "standby1", syncSlots)

	_, err = p.Exec(ctx, `CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 100)`)
	require.NoError(t, err)
	var slotLSN string
	require.NoError(t, p.QueryRow(ctx, `SELECT lsn::text FROM pg_create_logical_replication_slot('logical1', 'pgoutput', false, false, true)`).Scan(&slotLSN))

	s := connect(t, standby.URL("postgres"))
	var inRecovery bool
	require.NoError(t, s.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery))
	require.True(t, inRecovery)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		var n int
		var synced bool
		err := s.QueryRow(ctx, `SELECT (SELECT count(*) FROM t),
			coalesce((SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = 'logical1'), false)`).Scan(&n, &synced)
		if err != nil {
			return false, err.Error()
		}
		return n == 100 && synced, fmt.Sprintf("standby has %d rows, slot synced %v", n, synced)
	})

	require.NoError(t, primary.Kill())
	require.Error(t, p.Ping(ctx), "the killed primary's sessions are gone")
	require.NoError(t, standby.Promote(ctx))
	_, err = s.Exec(ctx, `INSERT INTO t VALUES (101)`)
	require.NoError(t, err, "the promoted standby takes writes")
	var failover bool
	require.NoError(t, s.QueryRow(ctx, `SELECT failover FROM pg_replication_slots WHERE slot_name = 'logical1'`).Scan(&failover))
	require.True(t, failover, "the promoted standby has the failover slot")
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

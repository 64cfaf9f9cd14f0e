package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// A slot of the same name made by another tool is refused with a clear
// error, not misread.
func TestSlotWithAnotherPluginIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.db.Exec(t.Context(), `SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, e.slot)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = e.db.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, e.slot)
	})

	p := e.startRelay()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the relay kept running with a test_decoding slot:\n%s", p.out.String())
	}
	require.Error(t, p.err, "non-zero exit")
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	last := lines[len(lines)-1]
	assert.Contains(t, last, "test_decoding")
	assert.Contains(t, last, e.slot)
	assert.NotContains(t, p.out.String(), "goroutine ")
}

// JetStream forgets a Nats-Msg-Id after its duplicate window. A relay that
// marked events but died before confirming them re-reads them after a restart;
// the table's status, not JetStream, must keep them from being published twice.
func TestRestartAfterTheDedupWindowPublishesNothingTwice(t *testing.T) {
	t.Parallel()
	// Confirm rarely, so the kill lands between marking and confirming.
	e := setup(t, withEnv("EVENTBUS_STANDBY_INTERVAL=10s"))
	ctx := t.Context()
	nc, err := nats.Connect(e.nats.URL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: e.stream, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage, Duplicates: time.Second,
	})
	require.NoError(t, err)

	relay := e.startRelay()
	e.warmUp() // streaming now: the events below come through the stream
	const n = 20
	for i := range n {
		e.publish(ctx, "dedup.window", fmt.Sprint(i), `{}`)
	}
	var last string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&last))
	e.waitProcessed(n+1, 30*time.Second)
	relay.kill()

	var confirmed string
	var unconfirmed bool
	require.NoError(t, e.db.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, confirmed_flush_lsn < $2::pg_lsn
		FROM pg_replication_slots WHERE slot_name = $1`, e.slot, last).Scan(&confirmed, &unconfirmed))
	require.True(t, unconfirmed, "the kill must land before the slot is confirmed past the events: confirmed %s, last event before %s", confirmed, last)
	time.Sleep(2 * time.Second) // past the 1 s duplicate window

	e.startRelay()
	e.publish(ctx, "dedup.marker", "m", `{}`)
	e.waitProcessed(n+2, 30*time.Second)
	assert.Equal(t, n+2, e.streamCount(), "each event once in the stream, though JetStream forgot their ids")
}

// With no events at all and WAL written elsewhere (another table, another
// database), the slot keeps advancing: retained WAL stays bounded.
func TestIdleSlotAdvancesWhileOthersWriteWAL(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_HEARTBEAT_INTERVAL=500ms"))
	e.startRelay()
	ctx := t.Context()
	e.waitSlotActive(true)

	other, err := pgx.Connect(ctx, testenv.Postgres(t))
	require.NoError(t, err)
	defer other.Close(context.Background())
	_, err = e.db.Exec(ctx, `CREATE TABLE noise (id bigserial primary key, pad text)`)
	require.NoError(t, err)
	_, err = other.Exec(ctx, `CREATE TABLE noise (id bigserial primary key, pad text)`)
	require.NoError(t, err)
	for range 5 {
		_, err = e.db.Exec(ctx, `INSERT INTO noise (pad) SELECT repeat('x', 200) FROM generate_series(1, 20000)`)
		require.NoError(t, err)
		_, err = other.Exec(ctx, `INSERT INTO noise (pad) SELECT repeat('y', 200) FROM generate_series(1, 20000)`)
		require.NoError(t, err)
	}
	var written string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&written))

	eventually(t, 30*time.Second, func() (bool, string) {
		var confirmed string
		var caughtUp bool
		var retained int64
		_ = e.db.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, confirmed_flush_lsn >= $2::pg_lsn,
			(pg_current_wal_lsn() - restart_lsn)::bigint
			FROM pg_replication_slots WHERE slot_name = $1`, e.slot, written).Scan(&confirmed, &caughtUp, &retained)
		return caughtUp, fmt.Sprintf("confirmed_flush_lsn %s, want >= %s written by other tables and databases; retained %d bytes", confirmed, written, retained)
	})
	assert.Zero(t, e.streamCount(), "no events were published")
}

// A slot dropped under a running relay (by hand, or lost in a failover) is
// noticed, reported loudly and recreated; rows committed while it was
// missing are still pending, and the backfill of the new slot publishes them.
func TestSlotDroppedByHandIsRecreatedWithoutAGap(t *testing.T) {
	t.Parallel()
	e := setup(t)
	relay := e.startRelay()
	warm := e.warmUp()
	ctx := t.Context()

	w := e.startWriters(ctx, 2, 500)
	w.waitWritten(300)
	// Kill the walsender and drop the slot before the relay reconnects.
	eventually(t, 30*time.Second, func() (bool, string) {
		_, err := e.db.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, e.slot)
		if err != nil {
			return false, err.Error()
		}
		_, err = e.db.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, e.slot)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	ids := append(w.wait(), warm)
	e.requireDeliveredOnce(ids, 2*time.Minute)
	relay.requireRunning()
	assert.Contains(t, relay.out.String(), "replication slot was missing")
}

// Failover slots need PostgreSQL 17; an older server gets one clear error.
func TestSlotFailoverNeedsPostgres17(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_SLOT_FAILOVER=true"))
	var version int
	require.NoError(t, e.db.QueryRow(t.Context(), `SELECT current_setting('server_version_num')::int`).Scan(&version))
	if version >= 170000 {
		t.Skip("PostgreSQL 17 or newer: failover slots are supported")
	}
	p := e.startRelay()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the relay kept running:\n%s", p.out.String())
	}
	require.Error(t, p.err)
	assert.Contains(t, p.out.String(), "EVENTBUS_SLOT_FAILOVER needs PostgreSQL 17")
}

// A slot whose WAL was removed (wal_status 'lost', max_slot_wal_keep_size
// exceeded while the relay was down) is detected and recreated, and every
// row still pending is published: those committed in the lost WAL too.
func TestLostSlotIsRecreatedAndPendingRowsPublished(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	e := setup(t, withPostgres(pg))
	ctx := t.Context()
	relay := e.startRelay()
	warm := e.warmUp()
	require.Zero(t, relay.stop())

	// Events committed while the relay is down, then the WAL holding them is lost.
	var ids []string
	for i := range 20 {
		ids = append(ids, e.publish(ctx, "lost.wal", fmt.Sprint(i), `{}`))
	}
	_, err := e.db.Exec(ctx, `ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`)
	require.NoError(t, err)
	_, err = e.db.Exec(ctx, `SELECT pg_reload_conf()`)
	require.NoError(t, err)
	_, err = e.db.Exec(ctx, `CREATE TABLE noise (pad text)`)
	require.NoError(t, err)
	eventually(t, 60*time.Second, func() (bool, string) {
		for _, q := range []string{
			`INSERT INTO noise SELECT repeat('x', 1000) FROM generate_series(1, 5000)`,
			`SELECT pg_switch_wal()`,
			`CHECKPOINT`,
		} {
			if _, err := e.db.Exec(ctx, q); err != nil {
				return false, err.Error()
			}
		}
		var status string
		_ = e.db.QueryRow(ctx, `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&status)
		return status == "lost", "wal_status " + status
	})

	relay = e.startRelay()
	e.requireDeliveredOnce(append(ids, warm), time.Minute)
	relay.requireRunning()
	assert.Contains(t, relay.out.String(), "replication slot lost required WAL")
}

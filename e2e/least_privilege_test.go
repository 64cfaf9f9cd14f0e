package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// relayRole creates a login role with REPLICATION (what an operator runs,
// without the password: the test cluster trusts local connections), grants
// it with `eventbus migrate` and EVENTBUS_RELAY_ROLE, and returns its name and
// a database URL that connects as it. The role is dropped when the test ends.
func (e *env) relayRole() (role, dbURL string) {
	e.t.Helper()
	t := e.t
	role = testenv.UniqueName(t, "relay")
	_, err := e.db.Exec(t.Context(), "CREATE ROLE "+role+" LOGIN REPLICATION")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The relay is stopped by now (its cleanup was registered later).
		_, _ = e.db.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
		_, err := e.db.Exec(ctx, "DROP OWNED BY "+role)
		if err == nil {
			_, err = e.db.Exec(ctx, "DROP ROLE "+role)
		}
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})

	r := runCLI(t, e.bin, append(e.environ(), "EVENTBUS_RELAY_ROLE="+role), "migrate")
	require.Equal(t, 0, r.code, "migrate with EVENTBUS_RELAY_ROLE: %s", r)
	assert.Contains(t, r.stdout, "relay role "+role+" granted")

	u, err := url.Parse(e.dbURL)
	require.NoError(t, err)
	u.User = url.User(role)
	return role, u.String()
}

func TestRelayRunsAsLeastPrivilegeRole(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv(
		"EVENTBUS_MAX_RETRIES=2",
		"EVENTBUS_HEARTBEAT_INTERVAL=100ms",
		"EVENTBUS_REDRIVE_INTERVAL=300ms",
		"EVENTBUS_REDRIVE_AFTER=1s",
	))
	ctx := t.Context()
	role, roleURL := e.relayRole()

	// The role is neither a superuser nor the owner of anything.
	var super, bypass, owner bool
	require.NoError(t, e.db.QueryRow(ctx, `SELECT rolsuper, rolbypassrls,
		EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)
		FROM pg_roles r WHERE rolname = $1`, role).Scan(&super, &bypass, &owner))
	require.False(t, super, "superuser")
	require.False(t, bypass, "BYPASSRLS")
	require.False(t, owner, "owns a relation")

	// Pending before the relay's first start: backfilled through the
	// slot's exported snapshot, read as the role.
	var ids []string
	for i := range 3 {
		ids = append(ids, e.publish(ctx, "before.start", "b-"+strconv.Itoa(i), `{"n":1}`))
	}
	p := e.startRelayEnv("EVENTBUS_DATABASE_URL=" + roleURL)
	e.waitSlotActive(true)
	// The slot is briefly active for its creation before the session that
	// streams takes it, so the walsender is looked up until it is there.
	eventually(t, 30*time.Second, func() (bool, string) {
		var streamer string
		err := e.db.QueryRow(ctx, `SELECT a.usename FROM pg_replication_slots s
			JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name = $1`, e.slot).Scan(&streamer)
		return err == nil && streamer == role, fmt.Sprintf("the walsender streams as %q (err %v), want the role %s", streamer, err, role)
	})

	// Streamed, and marked processed by the role.
	for i := range 3 {
		ids = append(ids, e.publish(ctx, "while.running", "r-"+strconv.Itoa(i), `{"n":2}`))
	}
	e.waitProcessed(len(ids), 60*time.Second)

	// A failed row without retries left: process_pending_events (here as the
	// owner) hands it back; the role reads it for the redrive.
	var redriven string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus
		(event_type, aggregate_type, aggregate_id, status, retry_count, error_message, created_at)
		VALUES ('redriven.event', 'test', 'p', 'failed', 5, 'boom', now() - interval '1 minute') RETURNING id::text`).Scan(&redriven))
	var n int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT public.process_pending_events(10)`).Scan(&n))
	require.Equal(t, 1, n, "process_pending_events hands back the failed row without retries left")
	// A bad row: the role records each failed attempt and then the failure.
	bad := e.insertDirect(ctx, "bad type", "x", `{}`, "pending")
	// A failed row with retries left: the redrive sweep (as the role) hands
	// it back through a logical message.
	swept := e.insertDirect(ctx, "swept.event", "s", `{}`, "failed")
	after := e.publish(ctx, "after.bad", "a", `{"n":3}`)
	ids = append(ids, swept, redriven, after)

	e.waitStatuses(map[string]int{"processed": len(ids), "failed": 1}, 60*time.Second)
	e.requireFailed(ctx, bad, 2, "subject")
	inStream := map[string]bool{}
	for _, m := range e.streamMessages() {
		inStream[m.Body.ID] = true
	}
	for _, id := range ids {
		assert.True(t, inStream[id], "event %s in the stream", id)
		assert.Equal(t, "processed", e.eventRow(ctx, id).Status, "event %s", id)
	}
	assert.False(t, inStream[bad], "the bad event is not in the stream")

	// Heartbeats (pg_logical_emit_message) work as the role: with nothing
	// to deliver, WAL written elsewhere is confirmed.
	var target string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target))
	eventually(t, 30*time.Second, func() (bool, string) {
		var reached bool
		require.NoError(t, e.db.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`,
			e.slot, target).Scan(&reached))
		return reached, "the slot reaches the WAL position of " + target
	})

	// The operator commands that need no more than the role.
	statusEnv := append(e.environ(), "EVENTBUS_DATABASE_URL="+roleURL)
	r := runCLI(t, e.bin, statusEnv, "status", "--json")
	require.Equal(t, 0, r.code, "status as the role: %s", r)
	var st statusJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	assert.True(t, st.Active)
	assert.Equal(t, len(ids), st.Counts.Processed)
	assert.Equal(t, 1, st.Counts.Failed)

	// What the role cannot do.
	conn, err := pgx.Connect(ctx, roleURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	for _, stmt := range []string{
		`DELETE FROM public.event_bus`,
		`TRUNCATE public.event_bus`,
		`UPDATE public.event_bus SET payload = '{"forged": true}'`,
		`INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id) VALUES ('x.y', 'x', '1')`,
		`SELECT count(*) FROM public.leads`,
		`SELECT count(*) FROM public.profiles`,
		`SELECT public.publish_event('x.y', 'x', '1')`,
		`ALTER TABLE public.event_bus DISABLE ROW LEVEL SECURITY`,
		`DROP PUBLICATION ` + e.pub,
	} {
		_, err := conn.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if assert.ErrorAs(t, err, &pgErr, stmt) {
			assert.Equal(t, "42501", pgErr.Code, "%s: %v", stmt, err)
		}
	}
	var rows int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM public.event_bus`).Scan(&rows))
	assert.Equal(t, len(ids)+1, rows, "nothing deleted or inserted")

	out := p.out.String()
	assert.NotContains(t, out, "permission denied", "the relay never lacked a privilege")
	assert.NotContains(t, out, "heartbeat failed")
	assert.NotContains(t, out, "redrive sweep failed")
	assert.Equal(t, 0, p.stop(), "graceful stop")

	// Operator commands on the slot and the stream, as the role.
	r = runCLI(t, e.bin, statusEnv, "replay", "--id", after)
	require.Equal(t, 0, r.code, "replay as the role: %s", r)
	r = runCLI(t, e.bin, statusEnv, "slot", "reset")
	require.Equal(t, 0, r.code, "slot reset as the role: %s", r)
}

func TestMigrateRefusesUnfitRelayRole(t *testing.T) {
	t.Parallel()
	e := setup(t)

	r := runCLI(t, e.bin, append(e.environ(), "EVENTBUS_RELAY_ROLE=no_such_role_here"), "migrate")
	require.Equal(t, 1, r.code, "%s", r)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	assert.Equal(t, `eventbus migrate: relay role "no_such_role_here" does not exist: `+
		`create it first (CREATE ROLE "no_such_role_here" LOGIN REPLICATION PASSWORD '…')`, lines[len(lines)-1])

	r = runCLI(t, e.bin, append(e.environ(), "EVENTBUS_RELAY_ROLE=bad-role"), "migrate")
	require.Equal(t, 2, r.code, "%s", r)
	requireOneLine(t, r.stderr, `EVENTBUS_RELAY_ROLE: "bad-role" is not a valid role name`)
}

func TestRelayRoleWithoutPublicationSaysWhatToDo(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, roleURL := e.relayRole()

	// A publication name that `eventbus migrate` did not create: the role
	// may not create it, and the relay says who must.
	r := runCLI(t, e.bin, append(e.environ(), "EVENTBUS_DATABASE_URL="+roleURL, "EVENTBUS_PUBLICATION=not_migrated"), "run")
	require.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stderr, `create publication "not_migrated"`)
	assert.Contains(t, r.stderr, "run eventbus migrate as the owner of public.event_bus")
}

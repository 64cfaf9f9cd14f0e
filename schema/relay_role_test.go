package schema

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// newRole creates a role with the given attributes (e.g. "LOGIN REPLICATION")
// for the test. Roles are cluster-wide: it is dropped when the test ends,
// with what it was granted in conn's database.
func newRole(t *testing.T, conn *pgx.Conn, attrs string) string {
	t.Helper()
	role := testenv.UniqueName(t, "role")
	_, err := conn.Exec(t.Context(), "CREATE ROLE "+role+" "+attrs)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := conn.Exec(ctx, "DROP OWNED BY "+role)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP ROLE "+role)
		}
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	return role
}

func TestGrantRelayRole(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	conn := ts.conn
	ctx := t.Context()
	role := newRole(t, conn, "LOGIN REPLICATION")

	for range 2 { // idempotent
		require.NoError(t, GrantRelayRole(ctx, conn, role, RelayRoleOptions{}))
	}

	for _, c := range []struct {
		check string
		want  bool
	}{
		{"has_table_privilege($1, 'public.event_bus', 'SELECT')", true},
		{"has_column_privilege($1, 'public.event_bus', 'status', 'UPDATE')", true},
		{"has_column_privilege($1, 'public.event_bus', 'processed_at', 'UPDATE')", true},
		{"has_column_privilege($1, 'public.event_bus', 'retry_count', 'UPDATE')", true},
		{"has_column_privilege($1, 'public.event_bus', 'error_message', 'UPDATE')", true},
		{"has_table_privilege($1, 'public.eventbus_slot_state', 'SELECT')", true},
		{"has_table_privilege($1, 'public.eventbus_slot_state', 'INSERT')", true},
		{"has_table_privilege($1, 'public.eventbus_slot_state', 'UPDATE')", true},
		// Every overload: (boolean, text, text|bytea), with a fourth flush
		// argument since PostgreSQL 17.
		{`(SELECT count(*) = 2 AND bool_and(has_function_privilege($1, p.oid, 'EXECUTE'))
			FROM pg_catalog.pg_proc p
			WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = 'pg_logical_emit_message')`, true},

		{"has_table_privilege($1, 'public.event_bus', 'INSERT')", false},
		{"has_table_privilege($1, 'public.event_bus', 'DELETE')", false},
		{"has_table_privilege($1, 'public.event_bus', 'TRUNCATE')", false},
		{"has_column_privilege($1, 'public.event_bus', 'payload', 'UPDATE')", false},
		{"has_column_privilege($1, 'public.event_bus', 'organization_id', 'UPDATE')", false},
		{"has_column_privilege($1, 'public.event_bus', 'event_type', 'UPDATE')", false},
		{"has_table_privilege($1, 'public.eventbus_slot_state', 'DELETE')", false},
		{"has_table_privilege($1, 'public.eventbus_schema_migrations', 'SELECT')", false},
		{"has_table_privilege($1, 'public.leads', 'SELECT')", false},
		{"has_table_privilege($1, 'public.profiles', 'SELECT')", false},
		{"has_function_privilege($1, 'public.publish_event(text, text, text, jsonb, jsonb, uuid)', 'EXECUTE')", false},
		{"has_function_privilege($1, 'public.process_pending_events(integer)', 'EXECUTE')", false},
	} {
		var got bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT "+c.check, role).Scan(&got), c.check)
		assert.Equal(t, c.want, got, c.check)
	}

	var policies int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_policies
		WHERE schemaname = 'public' AND tablename = 'event_bus' AND policyname = $1 AND cmd = 'ALL' AND roles = ARRAY[$2]::name[]`,
		RelayPolicyName(role), role).Scan(&policies))
	assert.Equal(t, 1, policies, "one policy for the relay role, created once")

	require.NoError(t, EnsurePublication(ctx, conn, "owners_pub"))

	// What the relay does, as the role: despite RLS, it sees and marks every
	// organization's rows; it cannot change an event or delete it.
	err := asRole(t, conn, role, "", func(tx pgx.Tx) error {
		assert.Len(t, visible(t, tx), 6, "the relay role sees every row")
		tag, err := tx.Exec(ctx, `UPDATE public.event_bus SET status = 'processed', processed_at = now(),
			retry_count = retry_count + 1, error_message = NULL WHERE id = ANY($1::uuid[])`, []string{ts.failedA, ts.failedB})
		require.NoError(t, err)
		assert.EqualValues(t, 2, tag.RowsAffected(), "marks rows of both organizations")
		_, err = tx.Exec(ctx, `INSERT INTO public.eventbus_slot_state (slot_name, backfilled_at) VALUES ('s', now())
			ON CONFLICT (slot_name) DO UPDATE SET backfilled_at = excluded.backfilled_at`)
		require.NoError(t, err, "records backfill state")
		_, err = tx.Exec(ctx, `SELECT pg_logical_emit_message(true, 'eventbus.heartbeat', '')`)
		require.NoError(t, err, "writes heartbeats")
		return nil
	})
	require.NoError(t, err)
	for _, stmt := range []string{
		`DELETE FROM public.event_bus`,
		`TRUNCATE public.event_bus`,
		`UPDATE public.event_bus SET payload = '{"forged": true}'`,
		`UPDATE public.event_bus SET organization_id = NULL`,
		`INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id) VALUES ('x.y', 'x', '1')`,
		`SELECT count(*) FROM public.leads`,
		`SELECT count(*) FROM public.profiles`,
		`SELECT public.publish_event('x.y', 'x', '1')`,
		`SELECT public.process_pending_events()`,
		`DROP PUBLICATION owners_pub`,
		`ALTER PUBLICATION owners_pub SET (publish = 'insert, update')`,
		`CREATE PUBLICATION p FOR TABLE public.event_bus`,
		`ALTER TABLE public.event_bus DISABLE ROW LEVEL SECURITY`,
	} {
		err := asRole(t, conn, role, "", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, stmt)
			return err
		})
		assert.Equal(t, "42501", pgCode(err), "%s: %v", stmt, err)
	}
}

func TestGrantRelayRolePrune(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	role := newRole(t, conn, "LOGIN REPLICATION")
	require.NoError(t, GrantRelayRole(ctx, conn, role, RelayRoleOptions{Prune: true}))
	var del, delDeliveries bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT has_table_privilege($1, 'public.event_bus', 'DELETE'),
		has_table_privilege($1, 'public.event_webhook_deliveries', 'DELETE')`, role).Scan(&del, &delDeliveries))
	assert.True(t, del, "retention deletes processed events")
	assert.True(t, delDeliveries, "retention deletes delivered webhook deliveries")
}

func TestGrantRelayRoleRefusesUnfitRoles(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()

	err := GrantRelayRole(ctx, conn, "no_such_relay_role", RelayRoleOptions{})
	require.EqualError(t, err, `relay role "no_such_relay_role" does not exist: create it first `+
		`(CREATE ROLE "no_such_relay_role" LOGIN REPLICATION PASSWORD '…')`)

	noRepl := newRole(t, conn, "LOGIN")
	err = GrantRelayRole(ctx, conn, noRepl, RelayRoleOptions{})
	require.EqualError(t, err, `relay role "`+noRepl+`" lacks the REPLICATION attribute: ALTER ROLE "`+noRepl+`" REPLICATION`)

	noLogin := newRole(t, conn, "NOLOGIN REPLICATION")
	err = GrantRelayRole(ctx, conn, noLogin, RelayRoleOptions{})
	require.EqualError(t, err, `relay role "`+noLogin+`" cannot log in: ALTER ROLE "`+noLogin+`" LOGIN`)

	var policies int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_policies WHERE tablename = 'event_bus'`).Scan(&policies))
	assert.Equal(t, 2, policies, "nothing created for a refused role")
}

func TestRelayPolicyName(t *testing.T) {
	assert.Equal(t, "eventbus relay: eventbus_relay", RelayPolicyName("eventbus_relay"))
	long := RelayPolicyName("r" + strings.Repeat("é", 40))
	assert.LessOrEqual(t, len(long), 63)
	assert.Equal(t, "eventbus relay: r", long[:17])
}

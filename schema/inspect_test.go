package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMissingRelayGrants(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	role := newRole(t, conn, "LOGIN REPLICATION")
	policy := `the policy "eventbus relay: ` + role + `" on public.event_bus`

	var emitters []string
	require.NoError(t, conn.QueryRow(ctx, `SELECT array_agg('EXECUTE on ' || oid::regprocedure::text ORDER BY 1)
		FROM pg_catalog.pg_proc WHERE proname = 'pg_logical_emit_message'`).Scan(&emitters))
	require.NotEmpty(t, emitters)

	missing, err := MissingRelayGrants(ctx, conn, role, RelayRoleOptions{})
	require.NoError(t, err)
	want := append([]string{
		"SELECT on public.event_bus",
		"UPDATE (status, processed_at, retry_count, error_message) on public.event_bus",
		"SELECT, INSERT, UPDATE on public.eventbus_slot_state",
	}, emitters...)
	assert.Equal(t, append(want, policy), missing, "before GrantRelayRole (migration 0007 revoked pg_logical_emit_message from PUBLIC)")

	require.NoError(t, GrantRelayRole(ctx, conn, role, RelayRoleOptions{}))
	missing, err = MissingRelayGrants(ctx, conn, role, RelayRoleOptions{})
	require.NoError(t, err)
	assert.Empty(t, missing, "what GrantRelayRole grants")
	missing, err = MissingRelayGrants(ctx, conn, role, RelayRoleOptions{Prune: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"DELETE on public.event_bus"}, missing, "retention needs DELETE")
	require.NoError(t, GrantRelayRole(ctx, conn, role, RelayRoleOptions{Prune: true}))
	missing, err = MissingRelayGrants(ctx, conn, role, RelayRoleOptions{Prune: true})
	require.NoError(t, err)
	assert.Empty(t, missing)

	r := pgx.Identifier{role}.Sanitize()
	_, err = conn.Exec(ctx, `REVOKE UPDATE (retry_count) ON public.event_bus FROM `+r+`;
		REVOKE INSERT ON public.eventbus_slot_state FROM `+r+`;
		REVOKE CONNECT ON DATABASE `+pgx.Identifier{conn.Config().Database}.Sanitize()+` FROM PUBLIC;
		DROP POLICY `+pgx.Identifier{RelayPolicyName(role)}.Sanitize()+` ON public.event_bus`)
	require.NoError(t, err)
	missing, err = MissingRelayGrants(ctx, conn, role, RelayRoleOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"CONNECT on database " + conn.Config().Database,
		"UPDATE (retry_count) on public.event_bus",
		"INSERT on public.eventbus_slot_state",
		policy,
	}, missing)

	super := newRole(t, conn, "LOGIN SUPERUSER")
	missing, err = MissingRelayGrants(ctx, conn, super, RelayRoleOptions{Prune: true})
	require.NoError(t, err)
	assert.Empty(t, missing, "a superuser has every privilege and bypasses row-level security")
}

func TestInspectCurrentRole(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	r, err := InspectCurrentRole(ctx, conn)
	require.NoError(t, err)
	assert.Equal(t, RoleInfo{Name: conn.Config().User, Exists: true, Superuser: true, Replication: true, Login: true}, r)

	role := newRole(t, conn, "LOGIN REPLICATION")
	require.NoError(t, asRole(t, conn, role, "", func(tx pgx.Tx) error {
		r, err := InspectCurrentRole(ctx, tx)
		assert.Equal(t, RoleInfo{Name: role, Exists: true, Replication: true, Login: true}, r)
		return err
	}))

	r, err = InspectRole(ctx, conn, "no_such_role")
	require.NoError(t, err)
	assert.Equal(t, RoleInfo{Name: "no_such_role"}, r)
}

package schema

import (
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
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
	assert.Equal(t, append(want, policy,
		"SELECT on public.event_webhooks",
		"UPDATE (enabled) on public.event_webhooks",
		"SELECT, INSERT, UPDATE on public.event_webhook_deliveries",
		"SELECT on public.event_types",
		"SELECT on public.event_schedules",
		"EXECUTE on public.eventbus_fire_schedule(uuid, timestamptz)",
	), missing, "before GrantRelayRole (migration 0007 revoked pg_logical_emit_message from PUBLIC)")

	require.NoError(t, GrantRelayRole(ctx, conn, role, RelayRoleOptions{}))
	missing, err = MissingRelayGrants(ctx, conn, role, RelayRoleOptions{})
	require.NoError(t, err)
	assert.Empty(t, missing, "what GrantRelayRole grants")
	missing, err = MissingRelayGrants(ctx, conn, role, RelayRoleOptions{Prune: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"DELETE on public.event_bus", "DELETE on public.event_webhook_deliveries"}, missing, "retention needs DELETE")
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

func TestInspectHBA(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t) // a cluster of its own: the test rewrites its pg_hba.conf
	conn := connect(t, pg.URL("postgres"))
	ctx := t.Context()
	role := newRole(t, conn, "LOGIN REPLICATION")
	group := newRole(t, conn, "NOLOGIN")
	other := newRole(t, conn, "NOLOGIN")
	super := newRole(t, conn, "LOGIN SUPERUSER")
	_, err := conn.Exec(ctx, "GRANT "+group+" TO "+role)
	require.NoError(t, err)

	// The file is read as it is on disk; the server keeps what it loaded.
	var file string
	require.NoError(t, conn.QueryRow(ctx, "SHOW hba_file").Scan(&file))
	lines := []string{
		"local all all trust",                                 // 1: yes
		"host all all 127.0.0.1/32 trust",                     // 2: yes
		"host replication all 0.0.0.0/0 scram-sha-256",        // 3: yes, physical
		"host otherdb " + role + " 10.0.0.0/8 md5",            // 4: another database
		"host postgres +" + group + " 10.1.0.0/16 md5",        // 5: yes, by membership
		"host sameuser all 10.2.0.0/16 md5",                   // 6: the database is not named after the role
		"host all +" + other + " 0.0.0.0/0 md5",               // 7: not a member
		"host all someone_else 0.0.0.0/0 md5",                 // 8: another user
		"host all all 999.0.0.0/8 md5",                        // 9: an error, left out
		"hostnossl all " + role + ",x ::/0 reject",            // 10: yes
		"host replication " + role + " samenet scram-sha-256", // 11: yes, physical
	}
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600))

	h, err := InspectHBA(ctx, conn, role)
	require.NoError(t, err)
	assert.Equal(t, role, h.Role)
	assert.Equal(t, "postgres", h.Database)
	var got []int
	for _, r := range h.Rules {
		got = append(got, r.Line)
	}
	assert.Equal(t, []int{1, 2, 3, 5, 10, 11}, got)
	require.Len(t, h.Rules, 6)
	assert.Equal(t, HBARule{File: h.Rules[2].File, Line: 3, Type: "host", Database: []string{"replication"}, User: []string{"all"},
		Address: "0.0.0.0", Netmask: "0.0.0.0", Method: "scram-sha-256", Physical: true}, h.Rules[2])
	assert.Equal(t, HBARule{File: h.Rules[0].File, Line: 1, Type: "local", Database: []string{"all"}, User: []string{"all"}, Method: "trust"}, h.Rules[0])
	assert.Equal(t, "::", h.Rules[4].Address)
	assert.Equal(t, "reject", h.Rules[4].Method)
	assert.True(t, h.Rules[5].Physical)

	// A superuser is not a member of every group for pg_hba.conf.
	h, err = InspectHBA(ctx, conn, super)
	require.NoError(t, err)
	got = nil
	for _, r := range h.Rules {
		got = append(got, r.Line)
	}
	assert.Equal(t, []int{1, 2, 3}, got)

	// No role: the session's.
	h, err = InspectHBA(ctx, conn, "")
	require.NoError(t, err)
	assert.Equal(t, conn.Config().User, h.Role)

	// Only superusers may read it.
	err = asRole(t, conn, role, "", func(tx pgx.Tx) error {
		_, err := InspectHBA(ctx, tx, "")
		return err
	})
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42501", pgErr.Code)
}

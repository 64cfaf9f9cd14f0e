package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tenants is a migrated database with two organizations, a user in each, a
// user without a profile, and events in both organizations and in none.
type tenants struct {
	conn                 *pgx.Conn
	orgA, orgB           string
	userA, userB, nobody string
	failedA, failedB     string
}

func setupTenants(t *testing.T) tenants {
	t.Helper()
	ts := tenants{
		conn: migrated(t),
		orgA: newUUID(t), orgB: newUUID(t),
		userA: newUUID(t), userB: newUUID(t), nobody: newUUID(t),
	}
	ctx := t.Context()
	_, err := ts.conn.Exec(ctx, `INSERT INTO public.profiles (id, organization_id, role)
		VALUES ($1, $2, 'admin'), ($3, $4, 'manager')`, ts.userA, ts.orgA, ts.userB, ts.orgB)
	require.NoError(t, err)

	insertEvent(t, ts.conn, "processed", "1 hour", &ts.orgA)
	ts.failedA = insertEvent(t, ts.conn, "failed", "1 hour", &ts.orgA)
	insertEvent(t, ts.conn, "processed", "1 hour", &ts.orgB)
	insertEvent(t, ts.conn, "pending", "0 seconds", &ts.orgB)
	ts.failedB = insertEvent(t, ts.conn, "failed", "1 hour", &ts.orgB)
	insertEvent(t, ts.conn, "processed", "1 hour", nil)
	return ts
}

// visible returns the organization of every event_bus row tx sees.
func visible(t *testing.T, tx pgx.Tx) []string {
	t.Helper()
	rows, err := tx.Query(t.Context(), `SELECT coalesce(organization_id::text, 'none') FROM public.event_bus`)
	require.NoError(t, err)
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return orgs
}

func TestAuthenticatedSeesOwnOrganization(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)

	for _, c := range []struct {
		user string
		want []string
	}{
		{ts.userA, []string{ts.orgA, ts.orgA}},
		{ts.userB, []string{ts.orgB, ts.orgB, ts.orgB}},
		{ts.nobody, nil},
		{"", nil}, // authenticated without claims
	} {
		err := asRole(t, ts.conn, "authenticated", c.user, func(tx pgx.Tx) error {
			assert.ElementsMatch(t, c.want, visible(t, tx), "user %q", c.user)
			return nil
		})
		require.NoError(t, err)
	}
}

func TestAuthenticatedCannotWriteDirectly(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)

	for _, stmt := range []string{
		`INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id)
		 VALUES ('x.y', 'x', '1', '` + ts.orgA + `')`,
		`UPDATE public.event_bus SET status = 'processed' WHERE id = '` + ts.failedA + `'`,
		`DELETE FROM public.event_bus WHERE id = '` + ts.failedA + `'`,
		`TRUNCATE public.event_bus`,
	} {
		err := asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(t.Context(), stmt)
			return err
		})
		assert.Equal(t, "42501", pgCode(err), "%s: %v", stmt, err)
	}
}

func TestAuthenticatedPublishesIntoOwnOrganization(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()

	err := asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT public.publish_event('x.y', 'x', '1', '{}', '{}', $1)`, ts.orgB)
		return err
	})
	require.ErrorContains(t, err, "is not the caller's organization")
	assert.Equal(t, "42501", pgCode(err))

	for _, org := range []*string{&ts.orgA, nil} {
		err = asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
			var id string
			require.NoError(t, tx.QueryRow(ctx,
				`SELECT public.publish_event('x.y', 'x', '1', '{}', '{}', $1)::text`, org).Scan(&id))
			var got string
			require.NoError(t, tx.QueryRow(ctx,
				`SELECT organization_id::text FROM public.event_bus WHERE id = $1`, id).Scan(&got),
				"the user sees the event it published")
			assert.Equal(t, ts.orgA, got)
			return nil
		})
		require.NoError(t, err)
	}

	err = asRole(t, ts.conn, "authenticated", ts.nobody, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT public.publish_event('x.y', 'x', '1')`)
		return err
	})
	require.ErrorContains(t, err, "has no profile")
	assert.Equal(t, "42501", pgCode(err))
}

func TestAuthenticatedLeadTriggersFollowTenantRule(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()
	// On Supabase the application grants this; leads' own RLS is not ours.
	_, err := ts.conn.Exec(ctx, `GRANT INSERT ON public.leads TO authenticated`)
	require.NoError(t, err)

	err = asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO public.leads (first_name, organization_id) VALUES ('Ann', $1)`, ts.orgA)
		require.NoError(t, err, "the trigger fires for a user without EXECUTE on it")
		var org string
		require.NoError(t, tx.QueryRow(ctx,
			`SELECT organization_id::text FROM public.event_bus WHERE event_type = 'lead.created'`).Scan(&org))
		assert.Equal(t, ts.orgA, org)
		return nil
	})
	require.NoError(t, err)

	err = asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO public.leads (first_name, organization_id) VALUES ('Bob', $1)`, ts.orgB)
		return err
	})
	require.ErrorContains(t, err, "is not the caller's organization",
		"a lead of another organization cannot publish into it")
}

func TestAuthenticatedRedrivesOwnOrganization(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()

	err := asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&n))
		assert.Equal(t, 1, n, "only the failed event of the admin's organization")
		var statusA string
		require.NoError(t, tx.QueryRow(ctx, `SELECT status FROM public.event_bus WHERE id = $1`, ts.failedA).Scan(&statusA))
		assert.Equal(t, "pending", statusA)
		return nil
	})
	require.NoError(t, err)

	err = asRole(t, ts.conn, "authenticated", ts.nobody, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT public.process_pending_events(100)`)
		return err
	})
	assert.Equal(t, "42501", pgCode(err), "a user without a profile is no admin: %v", err)

	var statusB string
	require.NoError(t, ts.conn.QueryRow(ctx, `SELECT status FROM public.event_bus WHERE id = $1`, ts.failedB).Scan(&statusB))
	assert.Equal(t, "failed", statusB, "another organization's event is untouched")
}

func TestAnonHasNoAccess(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)

	for _, stmt := range []string{
		`SELECT count(*) FROM public.event_bus`,
		`SELECT public.process_pending_events(100)`,
		`SELECT public.publish_event('x.y', 'x', '1')`,
		`SELECT count(*) FROM public.eventbus_slot_state`,
		`SELECT count(*) FROM public.eventbus_schema_migrations`,
	} {
		err := asRole(t, ts.conn, "anon", "", func(tx pgx.Tx) error {
			_, err := tx.Exec(t.Context(), stmt)
			return err
		})
		assert.Equal(t, "42501", pgCode(err), "%s: %v", stmt, err)
	}
}

func TestServiceRoleHasFullAccess(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()

	err := asRole(t, ts.conn, "service_role", "", func(tx pgx.Tx) error {
		assert.Len(t, visible(t, tx), 6, "service_role sees every row")
		_, err := tx.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id)
			VALUES ('x.y', 'x', '1', $1)`, ts.orgB)
		require.NoError(t, err)
		tag, err := tx.Exec(ctx, `UPDATE public.event_bus SET status = 'processed', processed_at = now() WHERE status = 'failed'`)
		require.NoError(t, err)
		assert.EqualValues(t, 2, tag.RowsAffected())
		tag, err = tx.Exec(ctx, `DELETE FROM public.event_bus WHERE organization_id IS NULL`)
		require.NoError(t, err)
		assert.EqualValues(t, 1, tag.RowsAffected())
		var id string
		require.NoError(t, tx.QueryRow(ctx, `SELECT public.publish_event('x.y', 'x', '1', '{}', '{}', $1)::text`, ts.orgA).Scan(&id))
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT public.process_pending_events()`).Scan(&n))
		return nil
	})
	require.NoError(t, err)
}

func TestEventBusPolicies(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	rows, err := conn.Query(t.Context(), `SELECT policyname, cmd, roles::text[]
		FROM pg_catalog.pg_policies WHERE schemaname = 'public' AND tablename = 'event_bus' ORDER BY policyname`)
	require.NoError(t, err)
	type policy struct {
		Name  string
		Cmd   string
		Roles []string
	}
	policies, err := pgx.CollectRows(rows, pgx.RowToStructByPos[policy])
	require.NoError(t, err)
	assert.Equal(t, []policy{
		{"Service role has full access", "ALL", []string{"service_role"}},
		{"Users can view events from their organization", "SELECT", []string{"public"}},
	}, policies)

	var enabled, forced bool
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT relrowsecurity, relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = 'public.event_bus'::regclass`).
		Scan(&enabled, &forced))
	assert.True(t, enabled, "RLS enabled")
	assert.False(t, forced, "RLS not forced: the owner (the relay) bypasses it")
}

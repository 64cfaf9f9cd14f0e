package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProfileWriters(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	exec := func(sql string) {
		t.Helper()
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	writers := func() []string {
		t.Helper()
		roles, err := ProfileWriters(ctx, conn)
		require.NoError(t, err)
		return roles
	}
	exec(`ALTER TABLE public.profiles ADD COLUMN full_name text`)
	assert.Empty(t, writers(), "after migrate, only the owner writes profiles")

	// Supabase's default privileges: the API roles get everything on a new table.
	exec(`GRANT ALL ON public.profiles TO anon, authenticated, service_role`)
	assert.Equal(t, []string{"anon", "authenticated"}, writers(), "service_role is trusted")

	// A column-level REVOKE does not take back a table-level GRANT.
	exec(`REVOKE UPDATE (organization_id, role) ON public.profiles FROM anon, authenticated`)
	assert.Equal(t, []string{"anon", "authenticated"}, writers())

	// The fix it recommends does.
	exec(ProfileWritersFix([]string{"anon", "authenticated"}))
	assert.Empty(t, writers())
	exec(`GRANT UPDATE (full_name) ON public.profiles TO authenticated`)
	assert.Empty(t, writers(), "other columns are the application's business")

	// Column privileges, INSERT as well as UPDATE, held directly or inherited.
	exec(`GRANT INSERT (id, organization_id) ON public.profiles TO anon`)
	member := newRole(t, conn, "LOGIN INHERIT")
	noInherit := newRole(t, conn, "LOGIN NOINHERIT")
	exec(`GRANT authenticated TO ` + member + `, ` + noInherit)
	exec(`GRANT UPDATE (role) ON public.profiles TO authenticated`)
	assert.ElementsMatch(t, []string{"anon", "authenticated", member}, writers(),
		"a role that inherits authenticated's privileges writes too; one that must SET ROLE is counted as authenticated")

	// With row level security, only a permissive policy for the command lets
	// anyone but a BYPASSRLS role write.
	exec(`REVOKE INSERT ON public.profiles FROM anon`)
	bypass := newRole(t, conn, "BYPASSRLS")
	exec(`GRANT UPDATE ON public.profiles TO ` + bypass)
	exec(`ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY`)
	assert.Equal(t, []string{bypass}, writers(), "RLS without a policy: nobody else writes")
	exec(`CREATE POLICY "read own" ON public.profiles FOR SELECT TO authenticated USING (id = auth.uid())`)
	exec(`CREATE POLICY "no updates" ON public.profiles AS RESTRICTIVE FOR UPDATE TO authenticated USING (false)`)
	assert.Equal(t, []string{bypass}, writers(), "neither a SELECT policy nor a restrictive one lets a write through")
	exec(`CREATE POLICY "update own" ON public.profiles FOR UPDATE TO authenticated USING (id = auth.uid())`)
	assert.ElementsMatch(t, []string{"authenticated", bypass, member}, writers(),
		"a policy lets members update their own row, organization_id and role included")
	exec(`DROP POLICY "update own" ON public.profiles`)
	exec(`CREATE POLICY "everything" ON public.profiles FOR ALL USING (true)`)
	assert.ElementsMatch(t, []string{"authenticated", bypass, member}, writers(), "a policy FOR ALL TO PUBLIC")

	// The owner, superusers and service_role are never reported.
	owner := newRole(t, conn, "NOLOGIN")
	exec(`ALTER TABLE public.profiles OWNER TO ` + owner)
	exec(`REVOKE ALL ON public.profiles FROM ` + bypass)
	ownerMember := newRole(t, conn, "LOGIN INHERIT")
	exec(`GRANT ` + owner + ` TO ` + ownerMember)
	assert.ElementsMatch(t, []string{"authenticated", member}, writers())
	exec(`ALTER TABLE public.profiles OWNER TO current_user`)
}

func TestProfileWritersIsReadOnly(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	// A role of the test's own: roles are shared by the cluster's databases,
	// and TestProfileWriters makes members of authenticated meanwhile.
	writer := newRole(t, conn, "LOGIN")
	_, err := conn.Exec(ctx, `GRANT UPDATE ON public.profiles TO `+writer)
	require.NoError(t, err)
	searchPath := func(q querier) string {
		var path string
		require.NoError(t, q.QueryRow(ctx, `SHOW search_path`).Scan(&path))
		return path
	}

	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		before := searchPath(tx)
		roles, err := ProfileWriters(ctx, tx)
		require.NoError(t, err, "it runs in a read-only transaction")
		assert.Equal(t, []string{writer}, roles)
		assert.Equal(t, before, searchPath(tx), "the caller's transaction is left as it was")
		return nil
	})
	require.NoError(t, err)

	before := searchPath(conn)
	roles, err := ProfileWriters(ctx, conn)
	require.NoError(t, err)
	assert.Equal(t, []string{writer}, roles)
	assert.Equal(t, before, searchPath(conn), "the session is left as it was")
}

func TestProfileWritersWithoutProfiles(t *testing.T) {
	t.Parallel()
	conn := connect(t, newDB(t))
	roles, err := ProfileWriters(t.Context(), conn)
	require.NoError(t, err)
	assert.Empty(t, roles, "no public.profiles: nothing to rewrite")
}

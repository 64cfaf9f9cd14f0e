package schema

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// profileWritersSQL lists the roles, other than superusers, service_role and
// those with the privileges of public.profiles' owner, that may INSERT or
// UPDATE its organization_id or role column: has_column_privilege counts
// table-level grants and privileges inherited through membership. With row
// level security on the table, a role without BYPASSRLS counts only when a
// permissive policy for that command (or ALL) applies to it; what the policy's
// expressions allow is not judged, a policy letting users update "their own
// row" lets them change these columns too. Predefined pg_* roles are left out
// (their members are listed). No row when public.profiles does not exist. It
// runs with search_path pinned (pinSearchPathSQL).
const profileWritersSQL = `WITH profiles AS (
  SELECT c.oid, c.relowner, c.relrowsecurity
  FROM pg_class c
  WHERE c.oid = to_regclass('public.profiles')
), tenant_columns AS (
  SELECT a.attname::text AS name
  FROM pg_attribute a JOIN profiles t ON a.attrelid = t.oid
  WHERE a.attname IN ('organization_id', 'role') AND a.attnum > 0 AND NOT a.attisdropped
), writes (privilege, polcmd) AS (
  VALUES ('INSERT', 'a'::"char"), ('UPDATE', 'w'::"char")
)
SELECT r.rolname::text
FROM pg_roles r CROSS JOIN profiles t
WHERE NOT r.rolsuper
  AND r.rolname <> 'service_role'
  AND r.rolname !~ '^pg_'
  AND NOT pg_has_role(r.oid, t.relowner, 'USAGE')
  AND EXISTS (
    SELECT 1 FROM tenant_columns c CROSS JOIN writes w
    WHERE has_column_privilege(r.oid, t.oid, c.name, w.privilege)
      AND (NOT t.relrowsecurity OR r.rolbypassrls OR EXISTS (
        SELECT 1 FROM pg_policy p
        WHERE p.polrelid = t.oid AND p.polpermissive AND p.polcmd IN (w.polcmd, '*')
          AND EXISTS (SELECT 1 FROM unnest(p.polroles) AS pr(oid)
                      WHERE pr.oid = 0 OR pg_has_role(r.oid, pr.oid, 'USAGE')))))
ORDER BY 1`

// ProfileWriters lists the roles that can change who belongs to which
// organization, or who is an organization's admin: the roles, other than the
// owner of public.profiles (and roles with its privileges), superusers and
// service_role, that may INSERT or UPDATE the organization_id or role column
// of public.profiles. Tenant isolation (the event_bus policy, publish_event's
// tenant rule, the admins' redrive) trusts those two columns: a member who
// can rewrite them can read and publish into any organization.
//
// Privileges count whether granted on the table or on the columns, to the
// role or to a role it inherits from. When row level security is enabled on
// public.profiles, a role (without BYPASSRLS) counts only if a permissive
// policy for UPDATE, INSERT or ALL applies to it; the policy's expressions are
// not judged, since a policy that lets users update their own row lets them
// change these columns too. Functions that write profiles (SECURITY DEFINER
// RPCs of the application) are not looked at. The result is sorted, empty
// when nobody else can write the columns or public.profiles does not exist.
//
// ProfileWriters only reads the catalogs, in a transaction (a savepoint when
// db is a pgx.Tx) that it rolls back: db may be a *pgx.Conn, a
// *pgxpool.Pool or a read-only transaction. See ProfileWritersFix for the
// remedy.
func ProfileWriters(ctx context.Context, db beginner) ([]string, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("check writers of public.profiles: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, pinSearchPathSQL); err != nil {
		return nil, fmt.Errorf("check writers of public.profiles: pin search_path: %w", err)
	}
	rows, err := tx.Query(ctx, profileWritersSQL)
	if err != nil {
		return nil, fmt.Errorf("check writers of public.profiles: %w", err)
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check writers of public.profiles: %w", err)
	}
	return roles, nil
}

// ProfileWritersFix returns the statement that takes INSERT and UPDATE on
// public.profiles back from roles (as ProfileWriters reports them), table- and
// column-level alike. A column-level REVOKE (REVOKE UPDATE (organization_id,
// role) …) is not enough where the roles hold a table-level grant, as
// Supabase's default privileges give its API roles. Grant back the columns
// users may edit afterwards: GRANT UPDATE (full_name, …) ON public.profiles
// TO authenticated. A role listed only because it inherits another listed
// role's privileges keeps nothing once that role is fixed.
func ProfileWritersFix(roles []string) string {
	quoted := make([]string, len(roles))
	for i, r := range roles {
		quoted[i] = pgx.Identifier{r}.Sanitize()
	}
	return "REVOKE INSERT, UPDATE ON public.profiles FROM " + strings.Join(quoted, ", ")
}

package schema

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// RowQuerier is what the inspections need: a pgx connection, pool or
// transaction.
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// The inspections below read the catalog only; `eventbus doctor` turns
// their findings into checks with fixes.

// PublicationInfo is what InspectPublication found.
type PublicationInfo struct {
	Exists      bool
	HasEventBus bool // public.event_bus is among its tables
	Inserts     bool // it publishes inserts
	// Others names the other actions it publishes (update, delete,
	// truncate): decoded and skipped by the relay, at a cost.
	Others []string
	// Filtered is set when a row filter or column list restricts event_bus
	// (PostgreSQL 15+): events or fields would be hidden from the relay.
	Filtered bool
}

const inspectPublicationSQL = `SELECT p.pubinsert,
  EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables t
          WHERE t.pubname = p.pubname AND t.schemaname = 'public' AND t.tablename = 'event_bus'),
  EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel r
          WHERE r.prpubid = p.oid AND r.prrelid = to_regclass('public.event_bus')
            AND (to_jsonb(r) ->> 'prqual' IS NOT NULL OR to_jsonb(r) ->> 'prattrs' IS NOT NULL)),
  array_remove(ARRAY[CASE WHEN p.pubupdate THEN 'update' END, CASE WHEN p.pubdelete THEN 'delete' END,
                     CASE WHEN p.pubtruncate THEN 'truncate' END], NULL)
FROM pg_catalog.pg_publication p
WHERE p.pubname = $1`

// InspectPublication describes publication name.
func InspectPublication(ctx context.Context, q RowQuerier, name string) (PublicationInfo, error) {
	var p PublicationInfo
	err := q.QueryRow(ctx, inspectPublicationSQL, name).Scan(&p.Inserts, &p.HasEventBus, &p.Filtered, &p.Others)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("inspect publication %q: %w", name, err)
	}
	p.Exists = true
	return p, nil
}

// LeadTriggers are the seed's triggers on public.leads.
var LeadTriggers = []string{"on_lead_created", "on_lead_status_updated"}

// MissingLeadTriggers returns which of LeadTriggers are not installed and
// enabled on public.leads (the seed's Troubleshooting: "SELECT * FROM
// pg_trigger WHERE tgname LIKE '%lead%'").
func MissingLeadTriggers(ctx context.Context, q RowQuerier) ([]string, error) {
	var missing []string
	err := q.QueryRow(ctx, `SELECT coalesce(array_agg(want ORDER BY want), '{}')
		FROM unnest($1::text[]) want
		WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
			WHERE t.tgrelid = to_regclass('public.leads') AND t.tgname = want AND t.tgenabled <> 'D')`,
		LeadTriggers).Scan(&missing)
	if err != nil {
		return nil, fmt.Errorf("look up the lead triggers: %w", err)
	}
	return missing, nil
}

// seedPermissivePolicies are the seed's policies that let anyone insert and
// update every row; migration 0005 drops them.
var seedPermissivePolicies = []string{"System can insert events", "System can update events"}

// RLSInfo is the row-level security of public.event_bus.
type RLSInfo struct {
	Enabled bool
	// SeedPolicies are the seed's permissive policies still in place.
	SeedPolicies []string
}

// InspectRLS describes the row-level security of public.event_bus.
func InspectRLS(ctx context.Context, q RowQuerier) (RLSInfo, error) {
	var r RLSInfo
	err := q.QueryRow(ctx, `SELECT c.relrowsecurity,
		coalesce((SELECT array_agg(p.polname ORDER BY p.polname) FROM pg_catalog.pg_policy p
			WHERE p.polrelid = c.oid AND p.polname = ANY($1)), '{}')
		FROM pg_catalog.pg_class c WHERE c.oid = 'public.event_bus'::regclass`, seedPermissivePolicies).
		Scan(&r.Enabled, &r.SeedPolicies)
	if err != nil {
		return r, fmt.Errorf("inspect row-level security of public.event_bus: %w", err)
	}
	return r, nil
}

// UnpinnedDefinerFunctions returns the SECURITY DEFINER functions of schema
// public whose search_path is not pinned to trusted schemas: not set, or
// naming a schema other than pg_catalog and pg_temp. Such a function runs,
// as its owner, whatever function of the same name a role that may create in
// a schema on its path plants there.
func UnpinnedDefinerFunctions(ctx context.Context, q RowQuerier) ([]string, error) {
	var names []string
	err := q.QueryRow(ctx, `SELECT coalesce(array_agg(p.oid::regprocedure::text ORDER BY 1), '{}')
		FROM pg_catalog.pg_proc p
		WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
		  AND NOT EXISTS (
			SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c
			WHERE c LIKE 'search\_path=%'
			  AND NOT EXISTS (
				SELECT 1 FROM unnest(string_to_array(replace(replace(substr(c, 13), '"', ''), ' ', ''), ',')) s
				WHERE s NOT IN ('', 'pg_catalog', 'pg_temp')))`).Scan(&names)
	if err != nil {
		return nil, fmt.Errorf("look up definer functions: %w", err)
	}
	return names, nil
}

// RoleInfo describes a database role.
type RoleInfo struct {
	Name                                  string
	Exists, Superuser, Replication, Login bool
}

const inspectRoleSQL = `SELECT rolname, rolsuper, rolreplication, rolcanlogin FROM pg_catalog.pg_roles
WHERE rolname = coalesce($1, current_user)`

// InspectRole describes role name.
func InspectRole(ctx context.Context, q RowQuerier, name string) (RoleInfo, error) {
	return inspectRole(ctx, q, &name)
}

// InspectCurrentRole describes the role q's session runs as (current_user):
// the role the relay connects as, given the relay's EVENTBUS_DATABASE_URL.
func InspectCurrentRole(ctx context.Context, q RowQuerier) (RoleInfo, error) {
	return inspectRole(ctx, q, nil)
}

func inspectRole(ctx context.Context, q RowQuerier, name *string) (RoleInfo, error) {
	r := RoleInfo{Name: "current_user"}
	if name != nil {
		r.Name = *name
	}
	err := q.QueryRow(ctx, inspectRoleSQL, name).Scan(&r.Name, &r.Superuser, &r.Replication, &r.Login)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("inspect role %q: %w", r.Name, err)
	}
	r.Exists = true
	return r, nil
}

// missingRelayGrantsSQL lists, in GrantRelayRole's order, what role $1 lacks
// of what GrantRelayRole gives it: $2 are the columns it may update, $3 asks
// for DELETE too (RelayRoleOptions.Prune: on event_bus and the webhook
// deliveries), $4 is its policy's name. A
// superuser needs none of them; a role with BYPASSRLS needs no policy.
const missingRelayGrantsSQL = `WITH r AS (SELECT oid, rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1),
missing(n, what) AS (
  SELECT 1, 'CONNECT on database ' || quote_ident(current_database())
  WHERE NOT has_database_privilege($1, current_database(), 'CONNECT')
  UNION ALL
  SELECT 2, 'USAGE on schema public' WHERE NOT has_schema_privilege($1, 'public', 'USAGE')
  UNION ALL
  SELECT 3, 'SELECT on public.event_bus' WHERE NOT has_table_privilege($1, 'public.event_bus', 'SELECT')
  UNION ALL
  SELECT 4, 'UPDATE (' || string_agg(c, ', ' ORDER BY i) || ') on public.event_bus'
  FROM unnest($2::text[]) WITH ORDINALITY AS u(c, i)
  WHERE NOT has_column_privilege($1, 'public.event_bus', c, 'UPDATE')
  HAVING count(*) > 0
  UNION ALL
  SELECT 5, 'DELETE on public.event_bus' WHERE $3 AND NOT has_table_privilege($1, 'public.event_bus', 'DELETE')
  UNION ALL
  SELECT 5, 'DELETE on public.event_webhook_deliveries'
  WHERE $3 AND NOT has_table_privilege($1, 'public.event_webhook_deliveries', 'DELETE')
  UNION ALL
  SELECT 9, 'SELECT on public.event_webhooks' WHERE NOT has_table_privilege($1, 'public.event_webhooks', 'SELECT')
  UNION ALL
  SELECT 9, 'UPDATE (enabled) on public.event_webhooks'
  WHERE NOT has_column_privilege($1, 'public.event_webhooks', 'enabled', 'UPDATE')
  UNION ALL
  SELECT 10, string_agg(p, ', ' ORDER BY i) || ' on public.event_webhook_deliveries'
  FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) WITH ORDINALITY AS u(p, i)
  WHERE NOT has_table_privilege($1, 'public.event_webhook_deliveries', p)
  HAVING count(*) > 0
  UNION ALL
  SELECT 11, 'SELECT on public.event_types' WHERE NOT has_table_privilege($1, 'public.event_types', 'SELECT')
  UNION ALL
  SELECT 12, 'SELECT on public.event_schedules' WHERE NOT has_table_privilege($1, 'public.event_schedules', 'SELECT')
  UNION ALL
  SELECT 13, 'EXECUTE on public.eventbus_fire_schedule(uuid, timestamptz)'
  WHERE NOT has_function_privilege($1, 'public.eventbus_fire_schedule(uuid, timestamptz)', 'EXECUTE')
  UNION ALL
  SELECT 6, string_agg(p, ', ' ORDER BY i) || ' on public.eventbus_slot_state'
  FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) WITH ORDINALITY AS u(p, i)
  WHERE NOT has_table_privilege($1, 'public.eventbus_slot_state', p)
  HAVING count(*) > 0
  UNION ALL
  SELECT 7, 'EXECUTE on ' || p.oid::regprocedure::text
  FROM pg_catalog.pg_proc p
  WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = 'pg_logical_emit_message'
    AND NOT has_function_privilege($1, p.oid, 'EXECUTE')
  UNION ALL
  SELECT 8, 'the policy ' || quote_ident($4) || ' on public.event_bus'
  FROM r
  WHERE NOT r.rolsuper AND NOT r.rolbypassrls AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_policy pol
    WHERE pol.polrelid = 'public.event_bus'::regclass AND pol.polname = $4
      AND pol.polcmd = '*' AND pol.polpermissive AND r.oid = ANY (pol.polroles))
)
SELECT coalesce(array_agg(what ORDER BY n, what), '{}') FROM missing`

// MissingRelayGrants returns what role, an existing role, lacks of what
// GrantRelayRole(role, opts) grants it, one privilege (or one policy) an
// entry, e.g. "UPDATE (retry_count) on public.event_bus"; none when it has
// everything. Privileges it has by other means (a superuser, membership of
// a role that has them) count.
func MissingRelayGrants(ctx context.Context, q RowQuerier, role string, opts RelayRoleOptions) ([]string, error) {
	var missing []string
	err := q.QueryRow(ctx, missingRelayGrantsSQL, role, strings.Split(relayUpdateColumns, ", "), opts.Prune, RelayPolicyName(role)).
		Scan(&missing)
	if err != nil {
		return nil, fmt.Errorf("look up the grants of relay role %q: %w", role, err)
	}
	return missing, nil
}

// HBAInfo is what InspectHBA found: the lines of pg_hba.conf that let Role
// connect to Database.
type HBAInfo struct {
	Role, Database string
	// Rules are the lines, in the order the server tries them.
	Rules []HBARule
}

// HBARule is one line of pg_hba.conf as pg_hba_file_rules shows it.
type HBARule struct {
	File     string   `json:"file_name"` // PostgreSQL 16+; empty before
	Line     int      `json:"line_number"`
	Type     string   `json:"type"` // local, host, hostssl, hostnossl, hostgssenc, hostnogssenc
	Database []string `json:"database"`
	User     []string `json:"user_name"`
	Address  string   `json:"address"` // empty for local
	Netmask  string   `json:"netmask"`
	Method   string   `json:"auth_method"`
	// Physical is set for a line of database `replication`: it is for
	// physical replication connections (pg_basebackup, standbys). The
	// others are for connections to a database, logical replication
	// connections (the relay's) among them: `replication` does not match
	// those.
	Physical bool `json:"physical"`
}

// inspectHBASQL returns the role ($1, or current_user when NULL), the
// database, and as JSON the lines of pg_hba_file_rules that match them:
// the user column names the role, `all`, a `+group` it is a member of
// (directly or not; being a superuser does not count, as for the server), or
// on PostgreSQL 16+ a /regex; and the database column says `replication`, or
// matches the database (`all`, its name, `sameuser`, `samerole`, a /regex).
// Lines with errors are left out: the server refuses to load such a file.
const inspectHBASQL = `WITH RECURSIVE me AS (SELECT coalesce($1, current_user)::text AS name,
  current_setting('server_version_num')::int >= 160000 AS regex),
groups(oid) AS (
  SELECT r.oid FROM pg_catalog.pg_roles r, me WHERE r.rolname = me.name
  UNION
  SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN groups g ON m.member = g.oid),
member_of AS (SELECT coalesce(array_agg(r.rolname::text), '{}') AS names
  FROM pg_catalog.pg_roles r WHERE r.oid IN (SELECT oid FROM groups)),
rules AS (
  SELECT to_jsonb(h) || jsonb_build_object('physical', 'replication' = ANY (h.database)) AS j,
    h.database, h.user_name, coalesce((to_jsonb(h) ->> 'rule_number')::int, h.line_number) AS n
  FROM pg_catalog.pg_hba_file_rules h WHERE h.error IS NULL)
SELECT me.name, current_database(), coalesce(jsonb_agg(rules.j ORDER BY rules.n) FILTER (WHERE rules.j IS NOT NULL), '[]')
FROM me CROSS JOIN member_of
LEFT JOIN rules ON
  EXISTS (SELECT 1 FROM unnest(rules.user_name) u
    WHERE u IN ('all', me.name)
      OR (left(u, 1) = '+' AND substr(u, 2) = ANY (member_of.names))
      OR (left(u, 1) = '/' AND me.regex AND me.name ~ substr(u, 2)))
  AND ('replication' = ANY (rules.database) OR EXISTS (SELECT 1 FROM unnest(rules.database) d
    WHERE d IN ('all', current_database())
      OR (d = 'sameuser' AND current_database() = me.name)
      OR (d IN ('samerole', 'samegroup') AND current_database() = ANY (member_of.names))
      OR (left(d, 1) = '/' AND me.regex AND current_database() ~ substr(d, 2))))
GROUP BY me.name`

// InspectHBA returns the lines of pg_hba.conf that let role (empty: the
// session's current_user) connect to q's database or open physical
// replication connections, in the order the server tries them; it does not
// judge addresses or methods. It reads pg_hba_file_rules: the file as it is
// now, which the server loaded at its last reload or not. By default only
// superusers may read it; others get SQLSTATE 42501.
func InspectHBA(ctx context.Context, q RowQuerier, role string) (HBAInfo, error) {
	var h HBAInfo
	var name *string
	if role != "" {
		name = &role
	}
	if err := q.QueryRow(ctx, inspectHBASQL, name).Scan(&h.Role, &h.Database, &h.Rules); err != nil {
		return h, fmt.Errorf("read pg_hba_file_rules: %w", err)
	}
	return h, nil
}

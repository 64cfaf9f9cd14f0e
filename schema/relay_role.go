package schema

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// RelayRoleOptions tunes what GrantRelayRole grants beyond what `eventbus run`
// always needs.
type RelayRoleOptions struct {
	// Prune also grants DELETE on public.event_bus (and on
	// public.event_webhook_deliveries), for the relay's retention
	// (EVENTBUS_RETENTION), which deletes old processed events.
	Prune bool
}

// relayUpdateColumns are the event_bus columns the relay writes: statuses,
// and the history of failed attempts. It never changes an event's content.
const relayUpdateColumns = "status, processed_at, retry_count, error_message"

// relayRoleSQL describes role $1; no row: no such role.
const relayRoleSQL = `SELECT r.rolsuper, r.rolreplication, r.rolcanlogin,
  has_database_privilege(r.oid, current_database(), 'CONNECT'),
  has_schema_privilege(r.oid, 'public', 'USAGE')
FROM pg_catalog.pg_roles r WHERE r.rolname = $1`

// emitMessageSQL lists the pg_logical_emit_message overloads role $1 may not
// execute yet (migration 0007 revoked them from PUBLIC where it could).
const emitMessageSQL = `SELECT p.oid::regprocedure::text
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = 'pg_logical_emit_message'
  AND NOT has_function_privilege($1, p.oid, 'EXECUTE')
ORDER BY 1`

const relayPolicyExistsSQL = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy
WHERE polrelid = $2::regclass AND polname = $1)`

// relayPolicyTables are the tables whose rows the relay reads and writes
// whatever their organization: event_bus, and the webhook deliverer's.
var relayPolicyTables = []string{"public.event_bus", "public.event_webhooks", "public.event_webhook_deliveries", "public.event_schedules"}

// RelayPolicyName is the name of the row-level security policy on
// public.event_bus that lets role see and update every row.
// PostgreSQL truncates names to 63 bytes; so does RelayPolicyName, so that
// the name it returns is the one stored.
func RelayPolicyName(role string) string {
	name := "eventbus relay: " + role
	for len(name) > 63 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

// GrantRelayRole grants role — an existing role with LOGIN and REPLICATION,
// created by the operator — what `eventbus run` needs to relay events, and
// nothing more:
//
//	GRANT CONNECT ON DATABASE <db> TO role;            -- when PUBLIC's was revoked
//	GRANT USAGE ON SCHEMA public TO role;              -- idem
//	GRANT SELECT ON public.event_bus TO role;          -- backfill, redrive, metrics, status
//	GRANT UPDATE (status, processed_at, retry_count, error_message)
//	  ON public.event_bus TO role;                     -- marking rows, the redrive sweep
//	GRANT SELECT, INSERT, UPDATE ON public.eventbus_slot_state TO role;  -- backfill bookkeeping
//	GRANT SELECT, UPDATE (enabled) ON public.event_webhooks TO role;     -- webhook deliverer
//	GRANT SELECT, INSERT, UPDATE ON public.event_webhook_deliveries TO role;
//	GRANT SELECT ON public.event_types TO role;                          -- the catalog
//	GRANT SELECT ON public.event_schedules TO role;                      -- recurring events
//	GRANT EXECUTE ON FUNCTION public.eventbus_fire_schedule(uuid, timestamptz) TO role;
//	GRANT EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(…) TO role;  -- heartbeat, sweep
//	CREATE POLICY "eventbus relay: <role>" ON public.event_bus
//	  FOR ALL TO role USING (true) WITH CHECK (true);  -- RLS is enabled on event_bus
//
// plus DELETE on public.event_bus and public.event_webhook_deliveries with
// opts.Prune. Replication itself (the
// slot, streaming, the exported snapshot) needs only the REPLICATION
// attribute; the publication must exist already (Migrate and
// EnsurePublication, as the owner). It is idempotent; its grants run in one
// transaction under the migration lock. Its statements run with search_path
// pinned to pg_catalog (pinnedTx), since it runs as the owner or a superuser.
// Privileges granted to role by other means are left alone: it grants, it
// never revokes.
func GrantRelayRole(ctx context.Context, conn *pgx.Conn, role string, opts RelayRoleOptions) error {
	if role == "" {
		return errors.New("relay role name is empty")
	}
	r := pgx.Identifier{role}.Sanitize()
	create := fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD '…'", r)

	var super, replication, login, connect, usage bool
	err := pinnedTx(ctx, conn, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, relayRoleSQL, role).Scan(&super, &replication, &login, &connect, &usage)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("relay role %q does not exist: create it first (%s)", role, create)
	case err != nil:
		return fmt.Errorf("look up relay role %q: %w", role, err)
	case !super && !replication:
		return fmt.Errorf("relay role %q lacks the REPLICATION attribute: ALTER ROLE %s REPLICATION", role, r)
	case !login:
		return fmt.Errorf("relay role %q cannot log in: ALTER ROLE %s LOGIN", role, r)
	}

	err = pinnedTx(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		var stmts []string
		if !connect {
			var db string
			if err := tx.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
				return err
			}
			stmts = append(stmts, "GRANT CONNECT ON DATABASE "+pgx.Identifier{db}.Sanitize()+" TO "+r)
		}
		if !usage {
			stmts = append(stmts, "GRANT USAGE ON SCHEMA public TO "+r)
		}
		stmts = append(stmts,
			"GRANT SELECT ON public.event_bus TO "+r,
			"GRANT UPDATE ("+relayUpdateColumns+") ON public.event_bus TO "+r,
			"GRANT SELECT, INSERT, UPDATE ON public.eventbus_slot_state TO "+r,
			// The webhook deliverer: reads endpoints, disables one that
			// answered 410, records deliveries.
			"GRANT SELECT, UPDATE (enabled) ON public.event_webhooks TO "+r,
			"GRANT SELECT, INSERT, UPDATE ON public.event_webhook_deliveries TO "+r,
			// The event type catalog the relay checks payloads against
			// (readable by every role granted SELECT: its policy is true).
			"GRANT SELECT ON public.event_types TO "+r,
			// Recurring events: reads the schedules, fires their ticks
			// (publish_event only through eventbus_fire_schedule).
			"GRANT SELECT ON public.event_schedules TO "+r,
			"GRANT EXECUTE ON FUNCTION public.eventbus_fire_schedule(uuid, timestamptz) TO "+r,
		)
		if opts.Prune {
			stmts = append(stmts, "GRANT DELETE ON public.event_bus TO "+r, "GRANT DELETE ON public.event_webhook_deliveries TO "+r)
		}
		rows, err := tx.Query(ctx, emitMessageSQL, role)
		if err != nil {
			return err
		}
		sigs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, sig := range sigs {
			stmts = append(stmts, "GRANT EXECUTE ON FUNCTION pg_catalog."+sig+" TO "+r)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}

		policy := RelayPolicyName(role)
		for _, table := range relayPolicyTables {
			var exists bool
			if err := tx.QueryRow(ctx, relayPolicyExistsSQL, policy, table).Scan(&exists); err != nil {
				return err
			}
			if exists {
				continue
			}
			// Created only when missing: CREATE POLICY locks the table
			// exclusively, which would make every migrate wait for (and
			// block) the writers.
			s := "CREATE POLICY " + pgx.Identifier{policy}.Sanitize() + " ON " + table + " FOR ALL TO " + r +
				" USING (true) WITH CHECK (true)"
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("create policy %q on %s: %w", policy, table, err)
			}
		}
		return nil
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return fmt.Errorf("grant relay role %q: %w (run eventbus migrate as the owner of public.event_bus)", role, err)
		}
		return fmt.Errorf("grant relay role %q: %w", role, err)
	}
	return nil
}

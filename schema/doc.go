// Package schema owns the event bus's objects in Postgres: the outbox table
// public.event_bus, the SQL API around it (publish_event, process_pending_events),
// the lead triggers that publish through it, its row level security, and the
// publication the relay streams from.
//
// # Migrations
//
// The SQL lives in migrations/NNNN_name.sql, embedded in the binary and applied
// in version order by [Migrate] (the `eventbus migrate` command):
//
//	0001_event_bus          the seed's table, indexes for backfill, redrive and the
//	                        monitor; public.eventbus_slot_state for the relay
//	0002_roles_and_auth     anon, authenticated, service_role; auth.uid(); profiles, leads
//	0003_event_functions    eventbus_user_organization_ids, publish_event, process_pending_events
//	0004_lead_triggers      on_lead_created, on_lead_status_updated
//	0005_row_level_security RLS policies and grants
//	0006_validate_published_events  publish_event validates its input; an authenticated
//	                        session without a user id can neither publish nor redrive;
//	                        search_path = pg_catalog, public, pg_temp everywhere
//	0007_restrict_logical_messages  pg_logical_emit_message no longer executable by PUBLIC
//	                        (where the migrating role may change it)
//	0008_pin_search_path    every function: search_path = pg_catalog, pg_temp
//	0009_publisher_rules    metadata.published_by; reserved event types (the
//	                        triggers store through eventbus_store_event);
//	                        redrive for organization admins, at most 1000 a call
//	0010_null_status_is_pending  an index for rows whose status is NULL
//	0011_slot_state_timeline  eventbus_slot_state.timeline: a promoted standby's
//	                        slot is recognized and its pending rows backfilled
//	0012_redrive_null_columns  process_pending_events hands back rows whose
//	                        status or created_at is NULL
//
// Migrate takes a session advisory lock (a fixed key, per database) for its whole
// run, so concurrent runs — several relays starting at once — apply each
// migration exactly once: the others wait, then find nothing to do. Each
// migration runs in its own transaction together with its row in
// public.eventbus_schema_migrations(version, name, applied_at); a failing
// migration leaves nothing behind and is retried by the next run. Released
// migrations are never edited: a change is a new file.
//
// Every statement is also written to be re-runnable on its own (IF NOT EXISTS,
// CREATE OR REPLACE, DROP … IF EXISTS before CREATE, DO blocks that look before
// they create), because the tracking table is not the only history a database
// can have: see adoption below.
//
// # search_path
//
// PostgreSQL resolves an unqualified function or operator by the best match of
// argument types among the candidates of every schema on the search_path, not
// by the first schema that has one: an exact-typed function planted in public
// beats a polymorphic or variadic built-in (format, jsonb_build_object,
// array_length, array_agg, …) even when pg_catalog comes first on the path,
// and runs with the rights of whoever ran the statement. So:
//
//   - every function of the event bus (SECURITY DEFINER, trigger or not) has
//     search_path = pg_catalog, pg_temp and names every relation and every
//     function outside pg_catalog with its schema (migration 0008; a test
//     lists every SECURITY DEFINER and trigger function of public and auth and
//     fails on one whose search_path is not pinned);
//   - every migration, and the checks this package runs as the owner
//     (GrantRelayRole, EnsurePublication), run in transactions with the same
//     search_path; the few statements outside one qualify their built-ins.
//
// A role that may create in public (PUBLIC before PostgreSQL 15; on Supabase
// the API roles) therefore cannot make the migrating superuser, or a function
// owner, run its code.
//
// # Adopting a seed database
//
// A database that already runs the seed's event bus — the table with its rows,
// publish_event and process_pending_events, the lead triggers and the three RLS
// policies, usually on Supabase — migrates in place, with nothing lost:
//
//   - public.event_bus is created only when missing, so the existing table keeps
//     every row and status. Indexes are added (CREATE INDEX takes a SHARE lock on
//     the table while it builds: inserts wait for that long).
//   - The functions keep their names, signatures and return types and get our
//     bodies (CREATE OR REPLACE keeps their owner and grants). publish_event
//     applies the tenant rule of the contract; process_pending_events no longer
//     processes events, it hands stale pending and failed events back to the
//     running relay (see its comment in 0003_event_functions.sql).
//   - The lead triggers are dropped and recreated with the same names.
//   - The read policy "Users can view events from their organization" is
//     recreated with the same name and meaning; the seed's permissive "System can
//     insert events" and "System can update events" are dropped: API users write
//     only through the functions, service_role and the owner keep full access.
//   - What Supabase provides — the roles, the auth schema and auth.uid(), an
//     application's profiles and leads tables — is created only when missing and
//     never replaced. On plain PostgreSQL the same objects make the database look
//     enough like Supabase for the same migrations and tests to run.
//
// Rows the seed's poller left in 'processing' stay as they are; the relay does
// not publish them by itself (they were possibly published already), but
// process_pending_events() hands them back like failed ones.
//
// # Redrive messages
//
// process_pending_events() emits transactional logical decoding messages with
// prefix "eventbus.redrive" whose content is the handed-back event ids, as
// comma-separated text, at most 1000 per message. The relay, streaming with
// pgoutput's messages option, republishes those rows when it receives the
// message, with their plain Nats-Msg-Id.
//
// # The relay's role
//
// [GrantRelayRole] (`eventbus migrate` with EVENTBUS_RELAY_ROLE) grants an
// operator-created role with LOGIN and REPLICATION what `eventbus run` needs
// and nothing else: SELECT on event_bus, UPDATE of its status columns, its
// bookkeeping table, pg_logical_emit_message, and an RLS policy of its own.
//
// # Who may write public.profiles
//
// Tenant isolation trusts public.profiles: a user's organization_id decides
// what they see and where they publish, role = 'admin' whether they redrive.
// The table is usually the application's, and on Supabase the API roles get
// every privilege on a new table by default. [ProfileWriters] lists the roles
// (other than the owner, superusers and service_role) that can rewrite those
// columns, taking row level security into account; `eventbus migrate` logs a
// warning naming them and [ProfileWritersFix].
//
// # Publication
//
// [EnsurePublication] creates the publication the relay streams from, FOR TABLE
// public.event_bus WITH (publish = 'insert'): the relay's own status updates are
// then filtered out by the walsender.
package schema

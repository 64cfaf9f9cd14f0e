package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// seedRowsSQL gives the seed database a history: processed, pending, failed
// and processing events, from leads and published directly.
const seedRowsSQL = `
INSERT INTO public.profiles (id, organization_id, role)
VALUES ('11111111-1111-4111-8111-111111111111', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'admin');

INSERT INTO public.leads (first_name, last_name, phone, organization_id)
SELECT 'Lead', g::text, '+7999000000' || g, 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
FROM generate_series(1, 5) g;

SELECT public.process_pending_events(3);

SELECT public.publish_event('payment.completed', 'payment', 'p-1', '{"amount": 1}', '{}', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa');

INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id, status, retry_count, error_message)
VALUES ('payment.failed', 'payment', 'p-2', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'failed', 3, 'handler error'),
       ('payment.stuck', 'payment', 'p-3', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'processing', 0, NULL);

UPDATE public.event_bus SET created_at = created_at - interval '1 day';
`

// snapshot returns every event_bus row as JSON, ordered by id.
func snapshot(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT to_jsonb(e)::text FROM public.event_bus e ORDER BY id`)
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return all
}

func TestMigrateAdoptsSeedDatabase(t *testing.T) {
	t.Parallel()
	conn := connect(t, newDB(t))
	ctx := t.Context()
	_, err := conn.Exec(ctx, testenv.SeedSQL)
	require.NoError(t, err, "create the seed's objects")
	_, err = conn.Exec(ctx, seedRowsSQL)
	require.NoError(t, err, "create the seed's rows")

	var counts map[string]int
	require.NoError(t, conn.QueryRow(ctx,
		`SELECT jsonb_object_agg(status, n) FROM (SELECT status, count(*) n FROM public.event_bus GROUP BY status) s`).Scan(&counts))
	require.Equal(t, map[string]int{"processed": 3, "pending": 3, "failed": 1, "processing": 1}, counts, "seed history")
	before := snapshot(t, conn)

	ms, err := embeddedMigrations()
	require.NoError(t, err)
	applied, err := Migrate(ctx, conn, testLogger(t))
	require.NoError(t, err, "migrate the seed database")
	assert.Equal(t, len(ms), applied)
	assert.Equal(t, before, snapshot(t, conn), "every row is kept as it was")

	applied, err = Migrate(ctx, conn, testLogger(t))
	require.NoError(t, err)
	assert.Zero(t, applied)

	// process_pending_events is ours: it hands rows back instead of marking them.
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&n))
	assert.Equal(t, 5, n, "3 stale pending, 1 failed, 1 processing")
	require.NoError(t, conn.QueryRow(ctx,
		`SELECT jsonb_object_agg(status, n) FROM (SELECT status, count(*) n FROM public.event_bus GROUP BY status) s`).Scan(&counts))
	assert.Equal(t, map[string]int{"processed": 3, "pending": 5}, counts)
	failed := eventsWhere(t, conn, `event_type = 'payment.failed'`)
	require.Len(t, failed, 1)
	assert.Equal(t, 3, failed[0].RetryCount)

	// The triggers are ours and fire once.
	var leadID string
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO public.leads (first_name, email)
		VALUES ('New', 'new@example.com') RETURNING id::text`).Scan(&leadID))
	created := eventsWhere(t, conn, `aggregate_id = $1`, leadID)
	require.Len(t, created, 1)
	assert.Equal(t, "lead.created", created[0].EventType)
	assert.Len(t, created[0].Payload, 7)

	// publish_event is ours: it applies the tenant rule.
	err = asRole(t, conn, "authenticated", "11111111-1111-4111-8111-111111111111", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT public.publish_event('x.y', 'x', '1', '{}', '{}', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb')`)
		return err
	})
	require.ErrorContains(t, err, "is not the caller's organization")

	// The seed's read policy keeps its meaning, its write policies are gone.
	err = asRole(t, conn, "authenticated", "11111111-1111-4111-8111-111111111111", func(tx pgx.Tx) error {
		orgs := visible(t, tx)
		assert.Len(t, orgs, 7, "the 7 events of the user's organization, not the others")
		for _, org := range orgs {
			assert.Equal(t, "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", org)
		}
		return nil
	})
	require.NoError(t, err)
	rows, err := conn.Query(ctx, `SELECT policyname FROM pg_catalog.pg_policies
		WHERE schemaname = 'public' AND tablename = 'event_bus' ORDER BY policyname`)
	require.NoError(t, err)
	policies, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"Service role has full access", "Users can view events from their organization"}, policies)

	// Exactly one function of each name: replaced, not overloaded.
	var functions int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_proc
		WHERE pronamespace = 'public'::regnamespace AND proname IN
		('publish_event', 'process_pending_events', 'trigger_lead_created', 'trigger_lead_status_updated')`).Scan(&functions))
	assert.Equal(t, 4, functions)
}

func TestMigrateKeepsExistingAuthUID(t *testing.T) {
	t.Parallel()
	conn := connect(t, newDB(t))
	ctx := t.Context()
	const fixed = "22222222-2222-4222-8222-222222222222"
	_, err := conn.Exec(ctx, `CREATE SCHEMA auth;
		CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT '`+fixed+`'::uuid $$;`)
	require.NoError(t, err)

	_, err = Migrate(ctx, conn, testLogger(t))
	require.NoError(t, err)

	var uid string
	require.NoError(t, conn.QueryRow(ctx, `SELECT auth.uid()::text`).Scan(&uid))
	assert.Equal(t, fixed, uid, "an existing auth.uid() is never replaced")
}

func TestAuthUIDShim(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	user := newUUID(t)

	for _, c := range []struct {
		name   string
		setup  string
		want   *string
		errors bool
	}{
		{name: "unset", setup: `SELECT 1`},
		{name: "empty", setup: `SELECT set_config('request.jwt.claims', '', true)`},
		{name: "no sub", setup: `SELECT set_config('request.jwt.claims', '{"role": "anon"}', true)`},
		{name: "empty sub", setup: `SELECT set_config('request.jwt.claims', '{"sub": ""}', true)`},
		{name: "sub", setup: `SELECT set_config('request.jwt.claims', '{"sub": "` + user + `"}', true)`, want: &user},
		{name: "legacy claim", setup: `SELECT set_config('request.jwt.claim.sub', '` + user + `', true)`, want: &user},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			_, err = tx.Exec(ctx, c.setup)
			require.NoError(t, err)
			var got *string
			require.NoError(t, tx.QueryRow(ctx, `SELECT auth.uid()::text`).Scan(&got))
			assert.Equal(t, c.want, got)
		})
	}
}

func TestEventBusIsTheSeedsTable(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	rows, err := conn.Query(t.Context(), `SELECT column_name::text, data_type::text, is_nullable::text, coalesce(column_default::text, '')
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'event_bus' ORDER BY ordinal_position`)
	require.NoError(t, err)
	type column struct{ Name, Type, Nullable, Default string }
	columns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
	require.NoError(t, err)
	assert.Equal(t, []column{
		{"id", "uuid", "NO", "gen_random_uuid()"},
		{"event_type", "text", "NO", ""},
		{"aggregate_type", "text", "NO", ""},
		{"aggregate_id", "text", "NO", ""},
		{"payload", "jsonb", "YES", "'{}'::jsonb"},
		{"metadata", "jsonb", "YES", "'{}'::jsonb"},
		{"organization_id", "uuid", "YES", ""},
		{"status", "text", "YES", "'pending'::text"},
		{"created_at", "timestamp with time zone", "YES", "now()"},
		{"processed_at", "timestamp with time zone", "YES", ""},
		{"retry_count", "integer", "YES", "0"},
		{"error_message", "text", "YES", ""},
	}, columns)
}

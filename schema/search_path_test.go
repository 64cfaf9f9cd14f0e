package schema

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plantedPrefix starts the warning every planted function raises when it runs.
const plantedPrefix = "eventbus test: planted "

// overload is a function an attacker plants in public: name, argument types
// (as a call in the event bus's SQL passes them) and result type. Its body
// raises a warning naming itself and the role it runs as, then returns what
// pg_catalog's function of that name returns (or runs ret, when set), so
// that the caller goes on.
type overload struct{ name, args, result, ret string }

func (o overload) createSQL() string {
	var params []string
	if o.args != "" {
		for i := range strings.Split(o.args, ",") {
			params = append(params, fmt.Sprintf("$%d", i+1))
		}
	}
	ret := o.ret
	if ret == "" {
		ret = fmt.Sprintf("RETURN pg_catalog.%s(%s)", o.name, strings.Join(params, ", "))
	}
	sig := "public." + o.name + "(" + o.args + ")"
	return fmt.Sprintf(`CREATE FUNCTION %s RETURNS %s LANGUAGE plpgsql AS $body$
BEGIN
  RAISE WARNING '%s%s ran as %%', current_user;
  %s;
END
$body$`, sig, o.result, plantedPrefix, sig, ret)
}

// definerCallees are the functions called by the event bus's SECURITY
// DEFINER functions (publish_event and the function it stores through,
// process_pending_events, eventbus_user_organization_ids, the lead triggers,
// and auth.uid() they call), with the argument types of those calls. The
// polymorphic or variadic ones (format, jsonb_build_object, array_length,
// array_to_string, array_agg) are the ones an exact-typed overload in public
// used to win; the others match pg_catalog's exactly and are planted so that
// a search_path putting public before pg_catalog would be caught too.
var definerCallees = []overload{
	// Validation, the tenant rule and the published_by stamp.
	{name: "current_setting", args: "text, boolean", result: "text"},
	{name: "length", args: "text", result: "integer"},
	{name: "left", args: "text, integer", result: "text"},
	{name: "regexp_replace", args: "text, text, text, text", result: "text"},
	{name: "substring", args: "text, text", result: "text"},
	{name: "format", args: "text, text", result: "text"},
	{name: "upper", args: "text", result: "text"},
	{name: "lpad", args: "text, integer, text", result: "text"},
	{name: "to_hex", args: "integer", result: "text"},
	{name: "ascii", args: "text", result: "integer"},
	{name: "btrim", args: "text", result: "text"},
	{name: "jsonb_typeof", args: "jsonb", result: "text"},
	{name: "jsonb_build_object", args: "text, text", result: "jsonb"},
	// Redrive.
	{name: "now", args: "", result: "timestamp with time zone"},
	{name: "array_length", args: "uuid[], integer", result: "integer"},
	{name: "array_to_string", args: "uuid[], text", result: "text"},
	{name: "pg_logical_emit_message", args: "boolean, text, text", result: "pg_lsn"},
	// The lead triggers' payloads: lead.created, lead.status_updated.
	{name: "jsonb_build_object", args: "text, uuid, text, text, text, text, text, text, text, uuid, text, uuid, text, uuid", result: "jsonb"},
	{name: "jsonb_build_object", args: "text, uuid, text, text, text, text, text, uuid, text, uuid, text, uuid", result: "jsonb"},
}

// plantedArrayAggSQL plants array_agg(uuid), which process_pending_events
// aggregates its ids with.
const plantedArrayAggSQL = `
CREATE FUNCTION public.eventbus_test_array_agg_step(uuid[], uuid) RETURNS uuid[] LANGUAGE plpgsql AS $body$
BEGIN
  RAISE WARNING '` + plantedPrefix + `public.array_agg(uuid) ran as %', current_user;
  RETURN pg_catalog.array_append($1, $2);
END
$body$;
CREATE AGGREGATE public.array_agg(uuid) (sfunc = public.eventbus_test_array_agg_step, stype = uuid[], initcond = '{}')`

// plantedOperatorSQL plants an exact-typed operator: left = right.
func plantedOperatorSQL(fn, left, right string) string {
	sig := fmt.Sprintf("public.=(%s, %s)", left, right)
	return fmt.Sprintf(`
CREATE FUNCTION public.%s(%s, %s) RETURNS boolean LANGUAGE plpgsql AS $body$
BEGIN
  RAISE WARNING '%s%s ran as %%', current_user;
  RETURN $1::oid OPERATOR(pg_catalog.=) $2::oid;
END
$body$;
CREATE OPERATOR public.= (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.%s)`,
		fn, left, right, plantedPrefix, sig, left, right, fn)
}

// noticed is a connection that keeps the warnings of planted functions.
type noticed struct {
	*pgx.Conn
	mu      sync.Mutex
	planted []string
}

// connectNoticed opens a connection (closed when the test ends) that records
// every warning a planted function raises on it.
func connectNoticed(t *testing.T, dbURL string) *noticed {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	n := &noticed{}
	cfg.OnNotice = func(_ *pgconn.PgConn, notice *pgconn.Notice) {
		if strings.HasPrefix(notice.Message, plantedPrefix) {
			n.mu.Lock()
			n.planted = append(n.planted, strings.TrimPrefix(notice.Message, plantedPrefix))
			n.mu.Unlock()
		}
	}
	n.Conn, err = pgx.ConnectConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

// ran returns, and forgets, the planted functions that ran so far, each once.
func (n *noticed) ran() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	seen := make(map[string]bool)
	var out []string
	for _, p := range n.planted {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	n.planted = nil
	return out
}

// plant creates, as a new role that may only create in schema public (what
// PUBLIC may do before PostgreSQL 15, and what Supabase grants its API roles),
// each of the statements, and returns the role.
func plant(t *testing.T, conn *pgx.Conn, stmts ...string) string {
	t.Helper()
	ctx := t.Context()
	attacker := newRole(t, conn, "NOLOGIN")
	_, err := conn.Exec(ctx, "GRANT CREATE ON SCHEMA public TO "+attacker)
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+attacker); err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}))
	return attacker
}

// Nothing an attacker plants in public runs inside the event bus's SECURITY
// DEFINER functions, however well its argument types match: they run with
// search_path = pg_catalog, pg_temp.
func TestDefinerFunctionsIgnorePlantedOverloads(t *testing.T) {
	t.Parallel()
	dbURL := newDB(t)
	conn := connectNoticed(t, dbURL)
	ctx := t.Context()
	_, err := Migrate(ctx, conn.Conn, testLogger(t))
	require.NoError(t, err)
	org, user := newUUID(t), newUUID(t)
	_, err = conn.Exec(ctx, `INSERT INTO public.profiles (id, organization_id, role) VALUES ($1, $2, 'admin')`, user, org)
	require.NoError(t, err)

	stmts := []string{plantedArrayAggSQL}
	for _, o := range definerCallees {
		stmts = append(stmts, o.createSQL())
	}
	plant(t, conn.Conn, stmts...)

	// The plants work: from a session whose search_path has public, the
	// polymorphic calls of the definer functions take them.
	_, err = conn.Exec(ctx, `SELECT format('%s', 'x'::text), jsonb_build_object('trigger', 'insert'),
		array_length(ARRAY[gen_random_uuid()], 1), array_to_string(ARRAY[gen_random_uuid()], ','),
		(SELECT array_agg(u) FROM (VALUES (gen_random_uuid())) v(u))`)
	require.NoError(t, err)
	require.Len(t, conn.ran(), 5, "the planted overloads are taken by a session with public on its search_path")

	// As the superuser that owns the functions.
	var id string
	require.NoError(t, conn.QueryRow(ctx, `SELECT public.publish_event('payment.completed', 'payment', 'p-1',
		'{"amount": 1}', '{"source": "test"}', $1)::text`, org).Scan(&id))
	for _, bad := range []struct{ eventType, aggregateType, payload string }{
		{"lead created", "lead", "{}"},  // format
		{"lead\tcreated", "lead", "{}"}, // format, upper, lpad, to_hex, ascii
		{strings.Repeat("a", 300), "lead", "{}"},
		{"x.y", " ", "{}"},
		{"x.y", "lead", "[1]"},
	} {
		_, err := conn.Exec(ctx, `SELECT public.publish_event($1, $2, '1', $3::jsonb)`, bad.eventType, bad.aggregateType, bad.payload)
		require.Error(t, err)
		assert.Equal(t, "22023", pgCode(err), "%v", err)
	}
	insertEvent(t, conn.Conn, "failed", "1 hour", &org)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&n))
	assert.Equal(t, 1, n)
	var leadID string
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO public.leads (first_name, status_id, organization_id)
		VALUES ('Ann', $1, $2) RETURNING id::text`, newUUID(t), org).Scan(&leadID))
	_, err = conn.Exec(ctx, `UPDATE public.leads SET status_id = $2 WHERE id = $1`, leadID, newUUID(t))
	require.NoError(t, err)
	assert.Len(t, eventsWhere(t, conn, `aggregate_id = $1`, leadID), 2, "the triggers published")

	// As a user: the same functions, and the RLS policy's.
	err = asRole(t, conn.Conn, "authenticated", user, func(tx pgx.Tx) error {
		require.NoError(t, tx.QueryRow(ctx, `SELECT public.publish_event('note.added', 'note', 'n-1')::text`).Scan(&id))
		assert.NotEmpty(t, visible(t, tx))
		require.NoError(t, tx.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&n))
		return nil
	})
	require.NoError(t, err)

	assert.Empty(t, conn.ran(), "planted functions ran inside the event bus's functions")
}

// Every SECURITY DEFINER function and every trigger function in the schemas
// the event bus creates functions in pins its search_path to catalog and
// temporary schemas only: a new function that forgets to is caught here.
func TestEveryDefinerFunctionPinsSearchPath(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	rows, err := conn.Query(t.Context(), `SELECT n.nspname || '.' || p.proname, p.oid::pg_catalog.regprocedure::text,
		  coalesce(p.proconfig, '{}')
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE p.pronamespace IN ('public'::pg_catalog.regnamespace, 'auth'::pg_catalog.regnamespace)
		  AND (p.prosecdef OR p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype)
		ORDER BY 1`)
	require.NoError(t, err)
	type fn struct {
		Name, Sig string
		Config    []string
	}
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fn])
	require.NoError(t, err)
	var names []string
	for _, f := range fns {
		names = append(names, f.Name)
		var path *string
		for _, c := range f.Config {
			if v, ok := strings.CutPrefix(c, "search_path="); ok {
				path = &v
			}
		}
		if !assert.NotNil(t, path, "%s sets no search_path", f.Sig) {
			continue
		}
		for _, s := range strings.Split(*path, ",") {
			s = strings.Trim(strings.TrimSpace(s), `"`)
			assert.Contains(t, []string{"pg_catalog", "pg_temp", ""}, s,
				"%s: search_path %q has %q: only pg_catalog and pg_temp (or nothing) are safe", f.Sig, *path, s)
		}
	}
	assert.Subset(t, names, []string{"public.eventbus_user_organization_ids", "public.process_pending_events",
		"public.publish_event", "public.trigger_lead_created", "public.trigger_lead_status_updated"})
}

// schemaCallees are functions and operators the SQL of `eventbus migrate`
// and of the relay's start calls outside the definer functions, planted with
// the types of those calls: migration 0007's format of a regprocedure, the
// migration lock, the relay role's, the publication's and the profiles'
// checks.
var schemaCallees = []string{
	overload{name: "format", args: "text, text", result: "text"}.createSQL(),
	overload{name: "format", args: "text, regprocedure", result: "text"}.createSQL(),
	overload{name: "pg_advisory_lock", args: "text", result: "void", ret: "PERFORM pg_catalog.pg_advisory_lock($1::bigint)"}.createSQL(),
	overload{name: "pg_advisory_unlock", args: "text", result: "boolean", ret: "RETURN pg_catalog.pg_advisory_unlock($1::bigint)"}.createSQL(),
	overload{name: "pg_advisory_xact_lock", args: "text", result: "void", ret: "PERFORM pg_catalog.pg_advisory_xact_lock($1::bigint)"}.createSQL(),
	overload{name: "has_database_privilege", args: "oid, name, text", result: "boolean"}.createSQL(),
	overload{name: "to_jsonb", args: "pg_catalog.pg_publication_rel", result: "jsonb"}.createSQL(),
	plantedOperatorSQL("eventbus_test_oid_eq_regclass", "oid", "regclass"),
	plantedOperatorSQL("eventbus_test_oid_eq_int", "oid", "integer"),
}

// `eventbus migrate` runs as a superuser or the owner of everything: what an
// attacker planted in public before it ran must not run with its rights, in
// the migrations or in the checks around them.
func TestMigrateIgnoresPlantedOverloads(t *testing.T) {
	t.Parallel()
	dbURL := newDB(t)
	conn := connectNoticed(t, dbURL)
	ctx := t.Context()
	plant(t, conn.Conn, schemaCallees...)

	_, err := conn.Exec(ctx, `SELECT pg_advisory_lock('1'::text), format('%s', 'x'::text),
		(SELECT count(*) FROM pg_catalog.pg_class c WHERE c.oid = 'pg_class'::regclass)`)
	require.NoError(t, err)
	require.Len(t, conn.ran(), 3, "the planted overloads are taken by a session with public on its search_path")

	_, err = Migrate(ctx, conn.Conn, testLogger(t))
	require.NoError(t, err)
	require.NoError(t, EnsurePublication(ctx, conn.Conn, "eventbus"))
	require.NoError(t, EnsurePublication(ctx, conn.Conn, "eventbus"), "an existing publication is checked")
	relay := newRole(t, conn.Conn, "LOGIN REPLICATION")
	require.NoError(t, GrantRelayRole(ctx, conn.Conn, relay, RelayRoleOptions{}))
	_, err = conn.Exec(ctx, `ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
		GRANT UPDATE ON public.profiles TO authenticated;
		CREATE POLICY p ON public.profiles FOR UPDATE TO authenticated USING (true)`)
	require.NoError(t, err)
	writers, err := ProfileWriters(ctx, conn.Conn)
	require.NoError(t, err)
	assert.Equal(t, []string{"authenticated"}, writers)

	assert.Empty(t, conn.ran(), "planted functions ran as the migrating superuser")
}

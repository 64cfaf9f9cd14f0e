package schema

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPublishEventRefusesBadInput(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()

	for _, c := range []struct {
		name                      string
		eventType, aggType, aggID any
		payload, metadata         any
		want                      string
	}{
		{"null event type", nil, "a", "1", "{}", "{}", "p_event_type is empty"},
		{"empty event type", "", "a", "1", "{}", "{}", "p_event_type is empty"},
		{"space", "lead created", "a", "1", "{}", "{}", `p_event_type "lead created" is not a valid event type: it contains a space`},
		{"wildcard *", "lead.*", "a", "1", "{}", "{}", `it contains "*", which is not allowed`},
		{"wildcard >", "lead.>", "a", "1", "{}", "{}", `it contains ">", which is not allowed`},
		{"tab", "lead\tcreated", "a", "1", "{}", "{}", `"lead?created" is not a valid event type: it contains the character U+0009`},
		{"newline", "lead\ncreated", "a", "1", "{}", "{}", "it contains the character U+000A"},
		{"double dot", "lead..created", "a", "1", "{}", "{}", "it has an empty token (a leading, trailing or double dot)"},
		{"leading dot", ".lead", "a", "1", "{}", "{}", "it has an empty token"},
		{"trailing dot", "lead.", "a", "1", "{}", "{}", "it has an empty token"},
		{"only a dot", ".", "a", "1", "{}", "{}", "it has an empty token"},
		{"emoji", "lead.🎉", "a", "1", "{}", "{}", `it contains "🎉", which is not allowed`},
		{"cyrillic", "заказ.создан", "a", "1", "{}", "{}", `it contains "з", which is not allowed`},
		{"slash", "a/b", "a", "1", "{}", "{}", `it contains "/"`},
		{"too long", strings.Repeat("a", 256), "a", "1", "{}", "{}", "p_event_type is 256 characters long; at most 255 are allowed"},
		{"null aggregate type", "x.y", nil, "1", "{}", "{}", "p_aggregate_type is empty"},
		{"blank aggregate type", "x.y", "  ", "1", "{}", "{}", "p_aggregate_type is empty"},
		{"aggregate type with a line break", "x.y", "a\r\nb", "1", "{}", "{}", "p_aggregate_type contains a control character"},
		{"null aggregate id", "x.y", "a", nil, "{}", "{}", "p_aggregate_id is empty"},
		{"empty aggregate id", "x.y", "a", "", "{}", "{}", "p_aggregate_id is empty"},
		{"aggregate id with a line break", "x.y", "a", "1\n2", "{}", "{}", "p_aggregate_id contains a control character"},
		{"array payload", "x.y", "a", "1", "[1]", "{}", "p_payload must be a JSON object, got array"},
		{"string payload", "x.y", "a", "1", `"s"`, "{}", "p_payload must be a JSON object, got string"},
		{"json null payload", "x.y", "a", "1", "null", "{}", "p_payload must be a JSON object, got null"},
		{"number metadata", "x.y", "a", "1", "{}", "1", "p_metadata must be a JSON object, got number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := conn.Exec(ctx, `SELECT public.publish_event($1, $2, $3, $4::jsonb, $5::jsonb)`,
				c.eventType, c.aggType, c.aggID, c.payload, c.metadata)
			require.Error(t, err)
			assert.Equal(t, "22023", pgCode(err), "%v", err)
			assert.Contains(t, err.Error(), "publish_event: ")
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM public.event_bus`).Scan(&n))
	assert.Zero(t, n, "nothing refused was stored")

	long := strings.Repeat("x", 1000) + " y"
	_, err := conn.Exec(ctx, `SELECT public.publish_event($1, 'a', '1')`, long)
	require.ErrorContains(t, err, "is 1002 characters long")
	_, err = conn.Exec(ctx, `SELECT public.publish_event($1, 'a', '1')`, strings.Repeat("x", 200)+" y")
	require.ErrorContains(t, err, `"`+strings.Repeat("x", 80)+`..." is not a valid event type: it contains a space`,
		"a long value is shortened in the message")
}

func TestPublishEventAcceptsValidInput(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()

	for _, c := range []struct{ eventType, aggType, aggID, payload string }{
		{"lead.created", "lead", "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d", `{"first_name": "John"}`},
		{"payment-v2.completed_ok", "payment", "p-1", `{}`},
		{"A.B.C.D.E.F", "Agg Type", "id with spaces", `{"n": 1}`},
		{strings.Repeat("a", 255), "a", "1", `{}`},
		{"x", "тип", "идентификатор 🎉", `{"emoji": "🎉", "rtl": "مرحبا", "combining": "e\u0301"}`},
	} {
		var id string
		require.NoError(t, conn.QueryRow(ctx, `SELECT public.publish_event($1, $2, $3, $4::jsonb)::text`,
			c.eventType, c.aggType, c.aggID, c.payload).Scan(&id), "%+v", c)
		events := eventsWhere(t, conn, `id = $1`, id)
		require.Len(t, events, 1)
		assert.Equal(t, c.eventType, events[0].EventType)
		assert.Equal(t, c.aggType, events[0].AggregateType)
		assert.Equal(t, c.aggID, events[0].AggregateID)
	}
}

func TestAuthenticatedWithoutUserCannotPublishOrRedrive(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()

	for _, org := range []*string{&ts.orgB, nil} {
		err := asRole(t, ts.conn, "authenticated", "", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT public.publish_event('x.y', 'x', '1', '{}', '{}', $1)`, org)
			return err
		})
		require.ErrorContains(t, err, "publish_event: the caller is authenticated but has no user id")
		assert.Equal(t, "42501", pgCode(err))
	}

	err := asRole(t, ts.conn, "authenticated", "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT public.process_pending_events(100)`)
		return err
	})
	require.ErrorContains(t, err, "process_pending_events: the caller is authenticated but has no user id")
	assert.Equal(t, "42501", pgCode(err))
	for _, id := range []string{ts.failedA, ts.failedB} {
		events := eventsWhere(t, ts.conn, `id = $1`, id)
		require.Len(t, events, 1)
		assert.Equal(t, "failed", events[0].Status, "event %s untouched", id)
	}

	// service_role (no user either) is a trusted caller: any organization.
	err = asRole(t, ts.conn, "service_role", "", func(tx pgx.Tx) error {
		var id, org string
		require.NoError(t, tx.QueryRow(ctx, `SELECT public.publish_event('x.y', 'x', '1', '{}', '{}', $1)::text`, ts.orgB).Scan(&id))
		require.NoError(t, tx.QueryRow(ctx, `SELECT organization_id::text FROM public.event_bus WHERE id = $1`, id).Scan(&org))
		assert.Equal(t, ts.orgB, org)
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&n))
		assert.Equal(t, 2, n, "the failed events of both organizations")
		return nil
	})
	require.NoError(t, err)
}

func TestFunctionsAreHardened(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	rows, err := conn.Query(t.Context(), `SELECT p.proname, p.prosecdef, coalesce(array_to_string(p.proconfig, ';'), ''),
		has_function_privilege('anon', p.oid, 'EXECUTE'),
		has_function_privilege('authenticated', p.oid, 'EXECUTE'),
		has_function_privilege('service_role', p.oid, 'EXECUTE')
		FROM pg_catalog.pg_proc p
		WHERE p.pronamespace = 'public'::regnamespace
		  AND p.proname IN ('publish_event', 'process_pending_events', 'eventbus_user_organization_ids',
		                    'eventbus_store_event', 'trigger_lead_created', 'trigger_lead_status_updated')
		ORDER BY p.proname`)
	require.NoError(t, err)
	type fn struct {
		Name                         string
		SecurityDefiner              bool
		Config                       string
		Anon, Authenticated, Service bool
	}
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fn])
	require.NoError(t, err)
	const path = "search_path=pg_catalog, pg_temp"
	assert.Equal(t, []fn{
		// Read by the RLS policy, which applies to every role; it returns
		// the caller's own organizations only.
		{"eventbus_store_event", false, path, false, false, false},
		{"eventbus_user_organization_ids", true, path, true, true, true},
		{"process_pending_events", true, path, false, true, true},
		{"publish_event", true, path, false, true, true},
		{"trigger_lead_created", true, path, false, false, false},
		{"trigger_lead_status_updated", true, path, false, false, false},
	}, fns)
}

func TestLogicalMessagesAreNotForAPIRoles(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()

	for _, role := range []string{"anon", "authenticated", "service_role"} {
		err := asRole(t, ts.conn, role, ts.userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT pg_logical_emit_message(true, 'eventbus.redrive', $1::text)`, ts.failedB)
			return err
		})
		require.Error(t, err, role)
		assert.Equal(t, "42501", pgCode(err), "%s: %v", role, err)
		assert.Contains(t, err.Error(), "permission denied for function pg_logical_emit_message")
	}

	// process_pending_events still emits them, as its owner.
	err := asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&n))
		assert.Equal(t, 1, n)
		return nil
	})
	require.NoError(t, err)
}

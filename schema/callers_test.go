package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// publishAs calls publish_event as role (with user sub's JWT claims when sub
// is not empty) and returns the stored event, or the error.
func publishAs(t *testing.T, conn *pgx.Conn, role, sub, eventType, metadata string) (event, error) {
	t.Helper()
	var e event
	err := asRole(t, conn, role, sub, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(t.Context(), `SELECT public.publish_event($1, 'test', 't-1', '{}', $2::jsonb)::text`,
			eventType, nullable(metadata)).Scan(&id)
		if err != nil {
			return err
		}
		events := eventsWhere(t, tx, `id = $1`, id)
		require.Len(t, events, 1, "the publisher sees its event")
		e = events[0]
		return nil
	})
	return e, err
}

// currentUser is the role conn is connected as: in the tests, the superuser
// that migrated and owns the functions.
func currentUser(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var role string
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT current_user`).Scan(&role))
	return role
}

// nullable is s, or nil (SQL NULL) when s is empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestPublishEventRecordsThePublisher(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	owner := currentUser(t, ts.conn)
	const forged = `{"source": "form", "published_by": "someone-else"}`

	for _, c := range []struct {
		name, role, sub, metadata string
		want                      map[string]any
	}{
		{"user", "authenticated", ts.userA, forged, map[string]any{"source": "form", "published_by": ts.userA}},
		{"user, no metadata", "authenticated", ts.userB, "", map[string]any{"published_by": ts.userB}},
		{"user, published_by not a string", "authenticated", ts.userA, `{"published_by": {"id": 1}}`,
			map[string]any{"published_by": ts.userA}},
		// Trusted callers: nothing stamped, and nothing of theirs taken for a stamp.
		{"service_role", "service_role", "", forged, map[string]any{"source": "form"}},
		{"owner", owner, "", forged, map[string]any{"source": "form"}},
		{"owner, plain metadata", owner, "", `{"source": "cli"}`, map[string]any{"source": "cli"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := publishAs(t, ts.conn, c.role, c.sub, "x.y", c.metadata)
			require.NoError(t, err)
			assert.Equal(t, c.want, e.Metadata)
		})
	}
}

func TestLeadTriggersRecordTheUser(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()
	_, err := ts.conn.Exec(ctx, `GRANT SELECT, INSERT, UPDATE ON public.leads TO authenticated`)
	require.NoError(t, err)

	err = asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		var leadID string
		require.NoError(t, tx.QueryRow(ctx, `INSERT INTO public.leads (first_name, organization_id)
			VALUES ('Ann', $1) RETURNING id::text`, ts.orgA).Scan(&leadID))
		_, err := tx.Exec(ctx, `UPDATE public.leads SET status_id = gen_random_uuid() WHERE id = $1`, leadID)
		require.NoError(t, err)
		for eventType, trigger := range map[string]string{"lead.created": "insert", "lead.status_updated": "update"} {
			events := eventsWhere(t, tx, `aggregate_id = $1 AND event_type = $2`, leadID, eventType)
			require.Len(t, events, 1, "a user's lead change publishes %s, a reserved type", eventType)
			assert.Equal(t, map[string]any{"trigger": trigger, "published_by": ts.userA}, events[0].Metadata)
		}
		return nil
	})
	require.NoError(t, err)
}

func TestReservedEventTypesAreNotForUsers(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()

	for _, eventType := range []string{"lead.created", "lead.status_updated"} {
		_, err := publishAs(t, ts.conn, "authenticated", ts.userA, eventType, "")
		require.Error(t, err, eventType)
		assert.Equal(t, "42501", pgCode(err), "%v", err)
		assert.Contains(t, err.Error(), `publish_event: event type "`+eventType+`" is reserved`)

		for _, role := range []string{"service_role", currentUser(t, ts.conn)} {
			_, err = publishAs(t, ts.conn, role, "", eventType, "")
			assert.NoError(t, err, "%s publishes %s", role, eventType)
		}
	}
	_, err := publishAs(t, ts.conn, "authenticated", ts.userA, "lead.created.v2", "")
	assert.NoError(t, err, "only the exact types are reserved")

	// The list is the table's.
	_, err = ts.conn.Exec(ctx, `INSERT INTO public.eventbus_reserved_event_types (event_type) VALUES ('payment.completed')`)
	require.NoError(t, err)
	_, err = publishAs(t, ts.conn, "authenticated", ts.userA, "payment.completed", "")
	assert.Equal(t, "42501", pgCode(err), "%v", err)

	// Users can neither change the list nor store around publish_event.
	for _, stmt := range []string{
		`DELETE FROM public.eventbus_reserved_event_types`,
		`INSERT INTO public.eventbus_reserved_event_types (event_type) VALUES ('x.y')`,
		`SELECT public.eventbus_store_event('lead.created', 'lead', '1', '{}', '{}', NULL)`,
	} {
		for _, role := range []string{"authenticated", "anon"} {
			err := asRole(t, ts.conn, role, ts.userA, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, stmt)
				return err
			})
			assert.Equal(t, "42501", pgCode(err), "%s as %s: %v", stmt, role, err)
		}
	}
	err = asRole(t, ts.conn, "service_role", "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT public.eventbus_store_event('lead.created', 'lead', '1', '{}', '{}', NULL)`)
		return err
	})
	assert.Equal(t, "42501", pgCode(err), "the internal function is nobody's API: %v", err)
}

func TestRedriveIsForAdmins(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()

	for _, c := range []struct{ name, sub, want string }{
		{"member", ts.userB, "is not an admin"},
		{"no profile", ts.nobody, "is not an admin"},
		{"no user id", "", "the caller is authenticated but has no user id"},
	} {
		err := asRole(t, ts.conn, "authenticated", c.sub, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT public.process_pending_events(100)`)
			return err
		})
		require.Error(t, err, c.name)
		assert.Equal(t, "42501", pgCode(err), "%s: %v", c.name, err)
		assert.Contains(t, err.Error(), "process_pending_events: ", c.name)
		assert.Contains(t, err.Error(), c.want, c.name)
	}
	for _, id := range []string{ts.failedA, ts.failedB} {
		events := eventsWhere(t, ts.conn, `id = $1`, id)
		require.Len(t, events, 1)
		assert.Equal(t, "failed", events[0].Status, "nothing handed back")
	}
}

func TestRedriveLimitIsCappedForUsers(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t)
	ctx := t.Context()
	_, err := ts.conn.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id, status, created_at)
		SELECT 'test.event', 'test', g::text, $1, 'failed', now() - interval '1 hour' FROM generate_series(1, 1100) g`, ts.orgA)
	require.NoError(t, err)

	redrive := func(role, sub string, limit int) int {
		var n int
		err := asRole(t, ts.conn, role, sub, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT public.process_pending_events($1)`, limit).Scan(&n)
		})
		require.NoError(t, err, "%s %s", role, sub)
		return n
	}
	assert.Equal(t, 1000, redrive("authenticated", ts.userA, 5000), "an admin hands back at most 1000 at a time")
	assert.Equal(t, 10, redrive("authenticated", ts.userA, 10), "below the cap, p_limit holds")
	assert.Equal(t, 1102, redrive("service_role", "", 5000), "service_role is not capped: every failed event (1100 and setupTenants' two)")
	assert.Equal(t, 1102, redrive(currentUser(t, ts.conn), "", 5000), "nor the owner")
}

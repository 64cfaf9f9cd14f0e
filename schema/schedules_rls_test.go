package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Schedules are their organization's admins' business, like webhooks; the
// relay's role reads every schedule and fires ticks through
// eventbus_fire_schedule, never calling publish_event itself.
func TestSchedulesAreTheirOrganizationAdminsOnly(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t) // userA: admin of orgA; userB: manager of orgB
	ctx := t.Context()
	const insert = `INSERT INTO public.event_schedules (name, cron, event_type, aggregate_type, aggregate_id, organization_id)
		VALUES ($1, '* * * * *', 'report.due', 'report', 'r', $2)`
	for name, org := range map[string]*string{"a": &ts.orgA, "b": &ts.orgB, "all": nil} {
		_, err := ts.conn.Exec(ctx, insert, name, org)
		require.NoError(t, err)
	}
	names := func(tx pgx.Tx) []string {
		rows, err := tx.Query(ctx, `SELECT name FROM public.event_schedules`)
		require.NoError(t, err)
		n, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return n
	}
	require.NoError(t, asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		assert.ElementsMatch(t, []string{"a"}, names(tx), "admin of A: A's schedule only")
		_, err := tx.Exec(ctx, insert, "a2", ts.orgA)
		return err
	}))
	for _, org := range []*string{&ts.orgB, nil} {
		err := asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, insert, "x", org)
			return err
		})
		assert.Equal(t, "42501", pgCode(err), "admin of A inserting for %v", org)
	}
	require.NoError(t, asRole(t, ts.conn, "authenticated", ts.userB, func(tx pgx.Tx) error {
		assert.Empty(t, names(tx), "a manager is no admin")
		return nil
	}))
	err := asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT public.eventbus_fire_schedule(gen_random_uuid(), now())`)
		return err
	})
	assert.Equal(t, "42501", pgCode(err), "users do not fire ticks")
	require.NoError(t, asRole(t, ts.conn, "service_role", "", func(tx pgx.Tx) error {
		assert.Len(t, names(tx), 3)
		return nil
	}))

	role := newRole(t, ts.conn, "LOGIN REPLICATION")
	require.NoError(t, GrantRelayRole(ctx, ts.conn, role, RelayRoleOptions{}))
	_, err = ts.conn.Exec(ctx, `UPDATE public.event_schedules SET last_run_at = NULL`)
	require.NoError(t, err)
	require.NoError(t, asRole(t, ts.conn, role, "", func(tx pgx.Tx) error {
		assert.Len(t, names(tx), 3, "the relay role reads every schedule")
		var fired bool
		var eventID *string
		var refused *string
		require.NoError(t, tx.QueryRow(ctx, `SELECT fired, event_id::text, error
			FROM public.eventbus_fire_schedule((SELECT id FROM public.event_schedules WHERE name = 'b'), now())`).Scan(&fired, &eventID, &refused))
		assert.True(t, fired)
		assert.Nil(t, refused)
		require.NotNil(t, eventID)
		var org string
		require.NoError(t, tx.QueryRow(ctx, `SELECT organization_id::text FROM public.event_bus WHERE id = $1`, *eventID).Scan(&org))
		assert.Equal(t, ts.orgB, org, "the schedule's organization")
		return nil
	}))
	err = asRole(t, ts.conn, role, "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE public.event_schedules SET event_type = 'lead.created'`)
		return err
	})
	assert.Equal(t, "42501", pgCode(err), "the relay role cannot rewrite a schedule")
}

package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Webhook endpoints and their deliveries are an organization's admins'
// business: an admin sees and manages their organization's endpoints (and
// their secrets and deliveries) only, a member who is not an admin sees
// none, nobody but service_role and the owner touches an endpoint for every
// organization, and anon sees nothing.
func TestWebhooksAreTheirOrganizationAdminsOnly(t *testing.T) {
	t.Parallel()
	ts := setupTenants(t) // userA: admin of orgA; userB: manager of orgB
	ctx := t.Context()
	adminB := newUUID(t)
	_, err := ts.conn.Exec(ctx, `INSERT INTO public.profiles (id, organization_id, role) VALUES ($1, $2, 'admin')`, adminB, ts.orgB)
	require.NoError(t, err)
	var hookA, hookB, hookAll string
	require.NoError(t, ts.conn.QueryRow(ctx, `INSERT INTO public.event_webhooks (organization_id, url) VALUES ($1, 'https://a.example/hook') RETURNING id::text`, ts.orgA).Scan(&hookA))
	require.NoError(t, ts.conn.QueryRow(ctx, `INSERT INTO public.event_webhooks (organization_id, url) VALUES ($1, 'https://b.example/hook') RETURNING id::text`, ts.orgB).Scan(&hookB))
	require.NoError(t, ts.conn.QueryRow(ctx, `INSERT INTO public.event_webhooks (url) VALUES ('https://all.example/hook') RETURNING id::text`).Scan(&hookAll))
	for _, h := range []string{hookA, hookB, hookAll} {
		_, err := ts.conn.Exec(ctx, `INSERT INTO public.event_webhook_deliveries (webhook_id, event_id, message_id, event_type, body)
			VALUES ($1, gen_random_uuid(), gen_random_uuid()::text, 'lead.created', '{}')`, h)
		require.NoError(t, err)
	}
	seen := func(tx pgx.Tx, sql string) []string {
		rows, err := tx.Query(ctx, sql)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return ids
	}
	const endpoints = `SELECT id::text FROM public.event_webhooks`
	const deliveries = `SELECT webhook_id::text FROM public.event_webhook_deliveries`

	require.NoError(t, asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		assert.ElementsMatch(t, []string{hookA}, seen(tx, endpoints), "admin of A: A's endpoint only")
		assert.ElementsMatch(t, []string{hookA}, seen(tx, deliveries), "admin of A: A's deliveries only")
		var secret string
		require.NoError(t, tx.QueryRow(ctx, `SELECT secret FROM public.event_webhooks WHERE id = $1`, hookA).Scan(&secret))
		assert.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, secret, "a generated secret of 32 bytes")
		tag, err := tx.Exec(ctx, `UPDATE public.event_webhooks SET url = 'https://evil.example/' WHERE id IN ($1, $2)`, hookB, hookAll)
		require.NoError(t, err)
		assert.Zero(t, tag.RowsAffected(), "cannot change another organization's or a global endpoint")
		return nil
	}))
	// An admin creates endpoints for their organization, not for another
	// or for every organization.
	require.NoError(t, asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO public.event_webhooks (organization_id, url) VALUES ($1, 'https://a.example/2')`, ts.orgA)
		return err
	}))
	for _, org := range []*string{&ts.orgB, nil} {
		err := asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO public.event_webhooks (organization_id, url) VALUES ($1, 'https://x.example/')`, org)
			return err
		})
		assert.Equal(t, "42501", pgCode(err), "admin of A inserting for %v: refused by the policy", org)
	}
	require.NoError(t, asRole(t, ts.conn, "authenticated", ts.userB, func(tx pgx.Tx) error {
		assert.Empty(t, seen(tx, endpoints), "a manager is no admin")
		assert.Empty(t, seen(tx, deliveries))
		return nil
	}))
	require.NoError(t, asRole(t, ts.conn, "authenticated", adminB, func(tx pgx.Tx) error {
		assert.ElementsMatch(t, []string{hookB}, seen(tx, endpoints))
		return nil
	}))
	err = asRole(t, ts.conn, "anon", "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, endpoints)
		return err
	})
	assert.Equal(t, "42501", pgCode(err), "anon has no privilege")
	require.NoError(t, asRole(t, ts.conn, "service_role", "", func(tx pgx.Tx) error {
		assert.Len(t, seen(tx, endpoints), 3, "everyone's (asRole rolled the admin's insert back)")
		assert.Len(t, seen(tx, deliveries), 3)
		return nil
	}))
	// Deliveries are the deliverer's: an admin reads them, never writes.
	err = asRole(t, ts.conn, "authenticated", ts.userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE public.event_webhook_deliveries SET status = 'delivered'`)
		return err
	})
	assert.Equal(t, "42501", pgCode(err))
}

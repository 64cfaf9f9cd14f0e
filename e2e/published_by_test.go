package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What publish_event stamps reaches consumers: an event a Supabase user
// published, and one their change to a lead caused, carry the user's id as
// Eventbus-Published-By; a trusted caller's event carries none.
func TestPublishedByReachesTheStream(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()
	const user, org = "cccccccc-0000-4000-8000-00000000000c", "dddddddd-0000-4000-8000-00000000000d"
	_, err := e.db.Exec(ctx, `INSERT INTO public.profiles (id, organization_id, role) VALUES ($1, $2, 'member')`, user, org)
	require.NoError(t, err)

	tx, err := e.db.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT set_config('request.jwt.claims', $1, true)`, `{"sub":"`+user+`","role":"authenticated"}`)
	require.NoError(t, err)
	// The lead, as the owner inside the user's request (as a trigger fires
	// under PostgREST): the trigger stamps the user.
	_, err = tx.Exec(ctx, `INSERT INTO public.leads (first_name, last_name, phone, organization_id) VALUES ('Ann', 'Lee', '+15550001', $1)`, org)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SET LOCAL ROLE authenticated`)
	require.NoError(t, err)
	var byUser string
	require.NoError(t, tx.QueryRow(ctx, `SELECT public.publish_event('note.added', 'note', 'n-1', '{}', '{"published_by": "someone-else"}', $1)::text`, org).Scan(&byUser))
	require.NoError(t, tx.Commit(ctx))
	trusted := e.publish(ctx, "note.added", "n-2", `{}`)

	e.waitProcessed(3, 60*time.Second)
	headers := map[string]string{}
	for _, m := range e.streamMessages() {
		headers[m.Subject+" "+m.Body.ID] = m.Header.Get("Eventbus-Published-By")
	}
	require.Len(t, headers, 3)
	for key, by := range headers {
		switch {
		case key == "events.note.added "+byUser:
			assert.Equal(t, user, by, "published by the user (their own published_by dropped)")
		case key == "events.note.added "+trusted:
			assert.Empty(t, by, "a trusted caller publishes without a user")
		default:
			assert.Equal(t, "events.lead.created", key[:len("events.lead.created")], key)
			assert.Equal(t, user, by, "the lead the user created")
		}
	}
}

// Tenant isolation trusts public.profiles: `eventbus migrate` warns, naming
// the roles and the fix, when users can rewrite their own organization_id or
// role, and says nothing when they cannot.
func TestMigrateWarnsWhenUsersCanRewriteProfiles(t *testing.T) {
	t.Parallel()
	e := setup(t)
	out, err := e.command("migrate").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.NotContains(t, string(out), "can change organization_id or role in public.profiles", "nobody can yet")

	_, err = e.db.Exec(t.Context(), `GRANT UPDATE ON public.profiles TO authenticated`)
	require.NoError(t, err)
	out, err = e.command("migrate").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "can change organization_id or role in public.profiles")
	assert.Contains(t, string(out), "authenticated")
	assert.Contains(t, string(out), `fix="REVOKE INSERT, UPDATE ON public.profiles FROM \"authenticated\"`)
}

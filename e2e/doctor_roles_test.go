package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// loginRole creates a role with attrs (after LOGIN) for the test and returns
// its name and a database URL that connects as it; it is dropped when the
// test ends.
func (e *env) loginRole(t *testing.T, attrs string) (role, dbURL string) {
	t.Helper()
	role = testenv.UniqueName(t, "role")
	_, err := e.db.Exec(t.Context(), "CREATE ROLE "+role+" LOGIN "+attrs)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = e.db.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
		_, err := e.db.Exec(ctx, "DROP OWNED BY "+role+"; DROP ROLE "+role)
		assert.NoError(t, err, "drop role %s", role)
	})
	u, err := url.Parse(e.dbURL)
	require.NoError(t, err)
	u.User = url.User(role)
	return role, u.String()
}

// Doctor names the role the relay connects as and warns when it is a
// superuser; with EVENTBUS_RELAY_ROLE it checks the grants of `eventbus
// migrate` and names what is missing.
func TestDoctorChecksTheRelaysRole(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	role, roleURL := e.relayRole()

	// As the test's superuser, with EVENTBUS_RELAY_ROLE: the role has its
	// grants; the connection is a superuser's.
	res := doctorCheck(t, e, 0, "relay role", "EVENTBUS_RELAY_ROLE="+role)
	assert.Equal(t, "ok", res.Status)
	assert.True(t, strings.HasPrefix(res.Detail, role+": LOGIN, REPLICATION, not a superuser, with the grants of eventbus migrate"), res.Detail)
	res = doctorCheck(t, e, 0, "database role", "EVENTBUS_RELAY_ROLE="+role)
	assert.Equal(t, "warn", res.Status)
	assert.Contains(t, res.Detail, "the relay connects as postgres, a superuser")
	assert.Contains(t, res.Detail, "EVENTBUS_RELAY_ROLE is "+role+", which EVENTBUS_DATABASE_URL does not connect as")
	assert.Contains(t, res.Fix, "EVENTBUS_RELAY_ROLE")
	assert.Contains(t, res.Fix, "README, Running the relay as a least-privilege role")
	res = doctorCheck(t, e, 0, "database role")
	assert.Equal(t, "warn", res.Status, "without EVENTBUS_RELAY_ROLE too")

	// As the role, the relay's own URL: ok.
	res = doctorCheck(t, e, 0, "database role", "EVENTBUS_DATABASE_URL="+roleURL, "EVENTBUS_RELAY_ROLE="+role)
	assert.Equal(t, "ok", res.Status)
	assert.Equal(t, "the relay connects as "+role+": REPLICATION, not a superuser", res.Detail)

	// Grants taken away: named, and the next migrate gives them back.
	_, err := e.db.Exec(ctx, `REVOKE UPDATE (retry_count) ON public.event_bus FROM `+role+`;
		REVOKE EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(boolean, text, text) FROM `+role)
	require.NoError(t, err)
	res = doctorCheck(t, e, 1, "relay role", "EVENTBUS_RELAY_ROLE="+role)
	assert.Equal(t, "fail", res.Status)
	assert.Equal(t, role+" lacks what eventbus run needs: UPDATE (retry_count) on public.event_bus; EXECUTE on pg_logical_emit_message(boolean,text,text)", res.Detail)
	assert.Equal(t, "eventbus migrate with EVENTBUS_RELAY_ROLE="+role+", as the owner of public.event_bus, grants them", res.Fix)
	res = doctorCheck(t, e, 1, "relay role", "EVENTBUS_RELAY_ROLE="+role, "EVENTBUS_RETENTION=30d")
	assert.Contains(t, res.Detail, "DELETE on public.event_bus", "retention needs DELETE")
	r := runCLI(t, e.bin, append(e.environ(), "EVENTBUS_RELAY_ROLE="+role), "migrate")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Equal(t, "ok", doctorCheck(t, e, 0, "relay role", "EVENTBUS_RELAY_ROLE="+role).Status, "migrate granted them again")

	// A superuser as EVENTBUS_RELAY_ROLE warns.
	super, _ := e.loginRole(t, "REPLICATION SUPERUSER")
	res = doctorCheck(t, e, 0, "relay role", "EVENTBUS_RELAY_ROLE="+super)
	assert.Equal(t, "warn", res.Status)
	assert.Equal(t, super+" is a superuser", res.Detail)
	assert.Contains(t, res.Fix, "EVENTBUS_RELAY_ROLE")

	// A connection without REPLICATION cannot stream.
	plain, plainURL := e.loginRole(t, "NOREPLICATION")
	res = doctorCheck(t, e, 1, "database role", "EVENTBUS_DATABASE_URL="+plainURL)
	assert.Equal(t, "fail", res.Status)
	assert.Equal(t, "the relay connects as "+plain+", which lacks REPLICATION: it can neither create its slot nor stream from it", res.Detail)
	assert.Contains(t, res.Fix, "ALTER ROLE \""+plain+"\" REPLICATION")
}

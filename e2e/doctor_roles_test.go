package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
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
	// The text overload: (boolean, text, text) before PostgreSQL 17, with a
	// fourth argument (flush) since.
	var emitText string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
		WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = 'pg_logical_emit_message'
		  AND p.proargtypes[2] = 'text'::regtype`).Scan(&emitText))
	_, err := e.db.Exec(ctx, `REVOKE UPDATE (retry_count) ON public.event_bus FROM `+role+`;
		REVOKE EXECUTE ON FUNCTION pg_catalog.`+emitText+` FROM `+role)
	require.NoError(t, err)
	res = doctorCheck(t, e, 1, "relay role", "EVENTBUS_RELAY_ROLE="+role)
	assert.Equal(t, "fail", res.Status)
	assert.Equal(t, role+" lacks what eventbus run needs: UPDATE (retry_count) on public.event_bus; EXECUTE on "+emitText, res.Detail)
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

// Doctor shows which pg_hba.conf lines let the relay's role in and warns on
// one from any address, physical replication or the database alike; as a
// role that may not read pg_hba_file_rules it says so.
func TestDoctorShowsPgHBA(t *testing.T) {
	t.Parallel()
	e := setup(t, withPostgres(testenv.NewPostgres(t))) // a cluster of its own: the test edits its pg_hba.conf
	ctx := t.Context()
	role, roleURL := e.relayRole()
	var db, file string
	require.NoError(t, e.db.QueryRow(ctx, "SELECT current_database(), current_setting('hba_file')").Scan(&db, &file))

	// initdb's file: local and loopback lines only.
	res := doctorCheck(t, e, 0, "pg_hba", "EVENTBUS_RELAY_ROLE="+role)
	assert.Equal(t, "ok", res.Status)
	assert.Contains(t, res.Detail, role+" may connect to "+db+" (logical replication, the relay's, included) by pg_hba.conf:")
	assert.Contains(t, res.Detail, "(host all all 127.0.0.1/32 trust)")
	assert.Contains(t, res.Detail, "physical replication, which the relay never needs, by pg_hba.conf:")
	assert.Contains(t, res.Detail, "(host replication all 127.0.0.1/32 trust)")
	assert.True(t, strings.HasSuffix(res.Detail, "; none from any address"), res.Detail)

	// As the role itself: unreadable, a warn.
	res = doctorCheck(t, e, 0, "pg_hba", "EVENTBUS_DATABASE_URL="+roleURL, "EVENTBUS_RELAY_ROLE="+role)
	assert.Equal(t, "warn", res.Status)
	assert.True(t, strings.HasPrefix(res.Detail, "pg_hba.conf could not be read: only superusers may read pg_hba_file_rules"), res.Detail)
	assert.Contains(t, res.Fix, "no line should let "+role+" in from any address")

	// Lines that let everyone in from anywhere (after initdb's, which the
	// test's own connections match first; the view reads the file as it
	// is, so no reload is needed).
	content, err := os.ReadFile(file)
	require.NoError(t, err)
	n := strings.Count(string(content), "\n")
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("host replication all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n")
	require.NoError(t, errors.Join(err, f.Close()))
	physical := fmt.Sprintf("pg_hba.conf:%d (host replication all 0.0.0.0/0 scram-sha-256)", n+1)
	database := fmt.Sprintf("pg_hba.conf:%d (host all all ::/0 scram-sha-256)", n+2)

	res = doctorCheck(t, e, 0, "pg_hba", "EVENTBUS_RELAY_ROLE="+role)
	assert.Equal(t, "warn", res.Status)
	assert.Equal(t, database+" lets "+role+" connect to "+db+" from any address, logical replication included: with REPLICATION it can read every table of "+db+" through a slot of its own; "+
		physical+" lets "+role+" open physical replication connections from any address: with REPLICATION it can copy the whole cluster (pg_basebackup), which the relay never needs", res.Detail)
	assert.Equal(t, "above "+database+", add 'host "+db+" "+role+" <relay address>/32 scram-sha-256' and 'host all "+role+" all reject' (or restrict that line), then SELECT pg_reload_conf(); "+
		"restrict "+physical+" to the standbys' addresses and role, or add 'host replication "+role+" all reject' above it, then SELECT pg_reload_conf()", res.Fix)

	// Without EVENTBUS_RELAY_ROLE: the role doctor connects as.
	res = doctorCheck(t, e, 0, "pg_hba")
	assert.Equal(t, "warn", res.Status)
	assert.True(t, strings.HasPrefix(res.Detail, database+" lets postgres connect to "+db+" from any address"), res.Detail)
}

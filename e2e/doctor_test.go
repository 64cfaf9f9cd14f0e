package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

type doctorReport struct {
	OK      bool           `json:"ok"`
	Results []doctorResult `json:"results"`
}

type doctorResult struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

func (e *env) doctor(kv ...string) (doctorReport, cliResult) {
	e.t.Helper()
	r := runCLI(e.t, e.bin, append(e.environ(), kv...), "doctor", "--json")
	var rep doctorReport
	require.NoError(e.t, json.Unmarshal([]byte(r.stdout), &rep), "doctor --json: %s", r)
	return rep, r
}

// result is the one result of check; the test fails when doctor printed
// none or several.
func (r doctorReport) result(t *testing.T, check string) doctorResult {
	t.Helper()
	var found []doctorResult
	for _, c := range r.Results {
		if c.Check == check {
			found = append(found, c)
		}
	}
	require.Len(t, found, 1, "results of check %q in %+v", check, r.Results)
	return found[0]
}

// statuses maps each check to its status.
func (r doctorReport) statuses() map[string]string {
	m := map[string]string{}
	for _, c := range r.Results {
		m[c.Check] = c.Status
	}
	return m
}

// A healthy setup passes with a running relay; each thing broken on purpose
// fails its check with the fix, and doctor exits 1.
func TestDoctorFindsWhatIsBroken(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr))
	ctx := t.Context()
	e.startRelay()
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)

	rep, r := e.doctor()
	require.Equal(t, 0, r.code, "a healthy setup: %s", r)
	require.True(t, rep.OK)
	st := rep.statuses()
	for _, c := range []string{"database", "wal_level", "schema", "publication", "slot", "lead triggers",
		"row-level security", "definer functions", "profiles", "nats", "stream", "duplicate window", "stream limits", "relay"} {
		assert.Equal(t, "ok", st[c], "check %s: %s", c, r.stdout)
	}
	assert.Equal(t, "warn", st["durability"], "an R1 stream: durable only with sync_interval always")
	for _, c := range rep.Results {
		if c.Check == "durability" {
			// Doctor cannot see the server's sync_interval and says so.
			assert.Contains(t, c.Detail, "a client cannot read the server's sync_interval, so this warns whatever it is set to")
			assert.Contains(t, c.Fix, "check the NATS server's config")
		}
	}

	// Break four things.
	_, err := e.db.Exec(ctx, `ALTER TABLE public.leads DISABLE TRIGGER on_lead_created;
		GRANT UPDATE ON public.profiles TO authenticated;
		CREATE FUNCTION public.unsafe() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
		ALTER TABLE public.event_bus DISABLE ROW LEVEL SECURITY`)
	require.NoError(t, err)
	rep, r = e.doctor()
	require.Equal(t, 1, r.code, "%s", r)
	require.False(t, rep.OK)
	st = rep.statuses()
	for _, c := range []string{"lead triggers", "profiles", "definer functions", "row-level security"} {
		assert.Equal(t, "fail", st[c], "check %s: %s", c, r.stdout)
	}
	for _, c := range rep.Results {
		if c.Status == "fail" {
			assert.NotEmpty(t, c.Fix, "check %s has a fix", c.Check)
		}
	}
	assert.Contains(t, r.stdout, "on_lead_created")
	assert.Contains(t, r.stdout, "public.unsafe()")
	for _, c := range rep.Results {
		if c.Check == "profiles" {
			assert.Contains(t, c.Fix, `REVOKE INSERT, UPDATE ON public.profiles FROM "authenticated"`)
		}
	}
	requireOneLine(t, r.stderr, "check(s) failed")

	// The plain output: one line per check, a summary.
	plain := runCLI(t, e.bin, e.environ(), "doctor")
	assert.Equal(t, 1, plain.code)
	assert.Contains(t, plain.stdout, "fail  lead triggers")
	assert.Regexp(t, `\d+ ok, \d+ warn, 4 fail\n$`, plain.stdout)
}

// Nothing reachable, or nothing migrated: doctor says so and what to do.
func TestDoctorWithoutServicesOrSchema(t *testing.T) {
	t.Parallel()
	e := setup(t)
	bare := testenv.Postgres(t) // a database without eventbus's schema
	rep, r := e.doctor("EVENTBUS_DATABASE_URL="+bare, "EVENTBUS_NATS_URL=nats://127.0.0.1:1", "EVENTBUS_HTTP_ADDR=")
	require.Equal(t, 1, r.code, "%s", r)
	st := rep.statuses()
	assert.Equal(t, "fail", st["schema"])
	assert.Equal(t, "fail", st["nats"])
	for _, c := range rep.Results {
		if c.Check == "schema" {
			assert.Equal(t, "eventbus migrate", c.Fix)
		}
		if c.Check == "nats" {
			assert.True(t, strings.HasPrefix(c.Detail, "NATS at nats://127.0.0.1:1 is unreachable"), c.Detail)
		}
	}
	_, hasRelay := st["relay"]
	assert.False(t, hasRelay, "no HTTP address: no relay check")
}

// Doctor names the server versions and what they give the relay; with
// EVENTBUS_SLOT_FAILOVER it says whether the server and the slot allow a
// failover. Run on each PostgreSQL of the matrix (EVENTBUS_TEST_PG_BINDIR).
func TestDoctorReportsVersionsAndFeatures(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var version int
	require.NoError(t, e.db.QueryRow(t.Context(), `SELECT current_setting('server_version_num')::int`).Scan(&version))
	p := e.startRelay() // creates the slot, without FAILOVER
	e.waitSlotActive(true)
	require.Equal(t, 0, p.stop())

	details := func(rep doctorReport) map[string]string {
		m := map[string]string{}
		for _, c := range rep.Results {
			m[c.Check] = c.Detail
		}
		return m
	}
	rep, r := e.doctor()
	require.Equal(t, 0, r.code, "%s", r)
	d := details(rep)
	assert.Equal(t, "ok", rep.statuses()["postgres features"], "%s", r.stdout)
	assert.Contains(t, d["postgres features"], fmt.Sprintf("PostgreSQL %d.", version/10000))
	assert.Regexp(t, `server \d+\.\d+\.\d+`, d["nats"], "the NATS server's version")
	if version >= 170000 {
		assert.Contains(t, d["postgres features"], "failover slots (17+)")
		assert.Contains(t, d["slot"], "failover false")
	} else {
		assert.Contains(t, d["postgres features"], "no failover slots (17+)")
		assert.NotContains(t, d["slot"], "failover")
	}
	if version >= 150000 {
		assert.Contains(t, d["postgres features"], "empty transactions skipped (15+)")
	} else {
		assert.Contains(t, d["postgres features"], "no empty transactions skipped (15+): pgoutput sends BEGIN/COMMIT for every transaction")
	}

	rep, r = e.doctor("EVENTBUS_SLOT_FAILOVER=true")
	st := rep.statuses()
	if version >= 170000 {
		assert.Equal(t, 0, r.code, "%s", r)
		assert.Equal(t, "warn", st["failover"], "a slot made without FAILOVER: %s", r.stdout)
		assert.Contains(t, details(rep)["failover"], "not a failover slot")
	} else {
		assert.Equal(t, 1, r.code, "%s", r)
		assert.Equal(t, "fail", st["failover"], "%s", r.stdout)
		assert.Contains(t, details(rep)["failover"], "needs PostgreSQL 17 or newer")
	}
}

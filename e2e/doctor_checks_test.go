package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// doctorCheck runs `eventbus doctor --json` in e's environment with kv added,
// requires exit code code (1 when any check fails) and returns the result of
// check. Unlike env.doctor it reports to t, so it works in subtests.
func doctorCheck(t *testing.T, e *env, code int, check string, kv ...string) doctorResult {
	t.Helper()
	r := runCLI(t, e.bin, append(e.environ(), kv...), "doctor", "--json")
	var rep doctorReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), "doctor --json: %s", r)
	require.Equal(t, code, r.code, "doctor's exit code: %s", r)
	require.Equal(t, code == 0, rep.OK, "doctor's ok: %s", r.stdout)
	res := rep.result(t, check)
	if res.Status != "ok" {
		assert.NotEmpty(t, res.Fix, "check %s has a fix: %s", check, r.stdout)
	}
	return res
}

// createStream creates a stream on e's NATS server, as an operator would.
func (e *env) createStream(t *testing.T, cfg jetstream.StreamConfig) {
	t.Helper()
	nc, err := nats.Connect(e.natsURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(t.Context(), cfg)
	require.NoError(t, err, "create stream %s", cfg.Name)
}

// Streams made by hand, each with one thing wrong; each case has its own
// stream and subject prefix (streams on one server may not overlap).
func TestDoctorJudgesTheStream(t *testing.T) {
	t.Parallel()
	e := setup(t)

	t.Run("a stream that does not bind the prefix fails", func(t *testing.T) {
		stream := testenv.UniqueName(t, "S")
		e.createStream(t, jetstream.StreamConfig{Name: stream, Subjects: []string{"other.>"}, MaxAge: 24 * time.Hour})
		res := doctorCheck(t, e, 1, "stream", "EVENTBUS_STREAM="+stream, "EVENTBUS_SUBJECT_PREFIX=events")
		assert.Equal(t, "fail", res.Status)
		assert.Equal(t, stream+" binds other.>, not events.>: the relay refuses it", res.Detail)
		assert.Contains(t, res.Fix, "add events.> to the subjects of "+stream)
	})

	t.Run("memory storage fails", func(t *testing.T) {
		stream := testenv.UniqueName(t, "S")
		e.createStream(t, jetstream.StreamConfig{Name: stream, Subjects: []string{"mem.>"}, Storage: jetstream.MemoryStorage, MaxAge: 24 * time.Hour})
		res := doctorCheck(t, e, 1, "stream storage", "EVENTBUS_STREAM="+stream, "EVENTBUS_SUBJECT_PREFIX=mem")
		assert.Equal(t, "fail", res.Status)
		assert.Contains(t, res.Detail, "keeps messages in memory")
		assert.Equal(t, "recreate the stream with file storage", res.Fix)
		ok := doctorCheck(t, e, 1, "stream", "EVENTBUS_STREAM="+stream, "EVENTBUS_SUBJECT_PREFIX=mem")
		assert.Equal(t, "ok", ok.Status, "it binds the prefix")
		assert.Contains(t, ok.Detail, "memory storage")
	})

	t.Run("a duplicate window under two minutes warns", func(t *testing.T) {
		stream := testenv.UniqueName(t, "S")
		e.createStream(t, jetstream.StreamConfig{Name: stream, Subjects: []string{"dup.>"}, Duplicates: 30 * time.Second, MaxAge: 24 * time.Hour})
		res := doctorCheck(t, e, 0, "duplicate window", "EVENTBUS_STREAM="+stream, "EVENTBUS_SUBJECT_PREFIX=dup")
		assert.Equal(t, "warn", res.Status)
		assert.True(t, strings.HasPrefix(res.Detail, "30s: "), res.Detail)
		assert.Equal(t, "nats stream edit "+stream+" --dupe-window 10m", res.Fix)
	})
}

// The database broken one way at a time, and put back after each case.
func TestDoctorJudgesTheDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t)
	execSQL := func(t *testing.T, sql string) {
		t.Helper()
		_, err := e.db.Exec(t.Context(), sql)
		require.NoError(t, err, "%s", sql)
	}
	undo := func(t *testing.T, sql string) {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := e.db.Exec(ctx, sql)
			require.NoError(t, err, "%s", sql)
		})
	}
	require.Equal(t, "ok", doctorCheck(t, e, 0, "publication").Status, "the migrated setup")

	t.Run("a publication that also publishes updates warns", func(t *testing.T) {
		pub := testenv.UniqueName(t, "pub")
		execSQL(t, "CREATE PUBLICATION "+pub+" FOR TABLE public.event_bus WITH (publish = 'insert, update')")
		res := doctorCheck(t, e, 0, "publication", "EVENTBUS_PUBLICATION="+pub)
		assert.Equal(t, "warn", res.Status)
		assert.Equal(t, pub+" also publishes update: the relay decodes and skips them, at a cost", res.Detail)
		assert.Equal(t, "ALTER PUBLICATION "+pub+" SET (publish = 'insert')", res.Fix)
	})

	t.Run("a publication without event_bus fails", func(t *testing.T) {
		pub := testenv.UniqueName(t, "pub")
		execSQL(t, "CREATE PUBLICATION "+pub+" FOR TABLE public.leads WITH (publish = 'insert')")
		res := doctorCheck(t, e, 1, "publication", "EVENTBUS_PUBLICATION="+pub)
		assert.Equal(t, "fail", res.Status)
		assert.Equal(t, pub+" does not include public.event_bus", res.Detail)
		assert.Equal(t, "ALTER PUBLICATION "+pub+" ADD TABLE public.event_bus", res.Fix)
	})

	t.Run("the seed's permissive policies fail", func(t *testing.T) {
		// The seed's own statements.
		execSQL(t, `CREATE POLICY "System can insert events" ON public.event_bus FOR INSERT WITH CHECK (true);
			CREATE POLICY "System can update events" ON public.event_bus FOR UPDATE USING (true)`)
		undo(t, `DROP POLICY "System can insert events" ON public.event_bus; DROP POLICY "System can update events" ON public.event_bus`)
		res := doctorCheck(t, e, 1, "row-level security")
		assert.Equal(t, "fail", res.Status)
		assert.Equal(t, "the seed's permissive policies are still there: System can insert events, System can update events", res.Detail)
		assert.Equal(t, "eventbus migrate drops them", res.Fix)
	})

	t.Run("a definer function with the seed's search_path fails", func(t *testing.T) {
		// As the seed declares its functions; a pinned one beside it passes.
		execSQL(t, `CREATE FUNCTION public.seed_style() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = public AS 'SELECT 1';
			CREATE FUNCTION public.pinned_style() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'SELECT 1'`)
		undo(t, `DROP FUNCTION public.seed_style(); DROP FUNCTION public.pinned_style()`)
		res := doctorCheck(t, e, 1, "definer functions")
		assert.Equal(t, "fail", res.Status)
		assert.Equal(t, "SECURITY DEFINER functions without a pinned search_path: public.seed_style()", res.Detail)
		assert.Contains(t, res.Fix, "SET search_path = pg_catalog, pg_temp")
	})

	require.Equal(t, "ok", doctorCheck(t, e, 0, "definer functions").Status, "every case put back")
}

// A relay that does not answer, or answers not ready, is a warn: doctor
// cannot tell a relay that is down from one that runs elsewhere, and a
// standby is not ready by design.
func TestDoctorJudgesTheRunningRelay(t *testing.T) {
	t.Parallel()
	e := setup(t)

	nobody := freeAddr(t)
	res := doctorCheck(t, e, 0, "relay", "EVENTBUS_HTTP_ADDR="+nobody)
	assert.Equal(t, "warn", res.Status)
	assert.True(t, strings.HasPrefix(res.Detail, "no relay answers at "+nobody+": "), res.Detail)
	assert.Contains(t, res.Fix, "start the relay")

	active, standby := freeAddr(t), freeAddr(t)
	e.startRelayEnv("EVENTBUS_HTTP_ADDR=" + active)
	waitHTTP(t, 30*time.Second, active, "/readyz", http.StatusOK)
	e.startRelayEnv("EVENTBUS_HTTP_ADDR=" + standby)
	eventually(t, 30*time.Second, func() (bool, string) {
		code, body := httpGet(standby, "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "standby:"), "the second relay waits as a standby"
	})
	res = doctorCheck(t, e, 0, "relay", "EVENTBUS_HTTP_ADDR="+standby)
	assert.Equal(t, "warn", res.Status)
	assert.Equal(t, "the relay at "+standby+" is not ready (503): not ready: not streaming from the replication slot: standby: the slot is in use by another relay", res.Detail)
	assert.Contains(t, res.Fix, "a standby is not ready by design")
	assert.Equal(t, "ok", doctorCheck(t, e, 0, "relay", "EVENTBUS_HTTP_ADDR="+active).Status)
}

// A server that refuses the configured credentials fails the nats check,
// which says refused, not unreachable, and never prints the password.
func TestDoctorNATSRefusesTheCredentials(t *testing.T) {
	t.Parallel()
	addr := secureNATS(t, func(o *server.Options) { o.Username, o.Password = "relay", "Right-Pa55word" })
	e := setup(t)

	res := doctorCheck(t, e, 1, "nats", "EVENTBUS_NATS_URL=nats://relay:Wrong-Pa55word@"+addr)
	assert.Equal(t, "fail", res.Status)
	assert.Equal(t, "NATS at nats://relay:xxxxx@"+addr+" refuses the connection as configured: nats: Authorization Violation", res.Detail)
	assert.Contains(t, res.Fix, "credentials")
	assert.NotContains(t, res.Detail+res.Fix, "Wrong-Pa55word")

	res = doctorCheck(t, e, 0, "nats", "EVENTBUS_NATS_URL=nats://relay:Right-Pa55word@"+addr)
	assert.Equal(t, "ok", res.Status, "the right password")
}

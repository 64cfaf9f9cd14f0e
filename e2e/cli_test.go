package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cliResult is what one run of the binary printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the binary bin with args in the environment environ and waits
// for it to exit, at most a minute.
func runCLI(t *testing.T, bin string, environ []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	require.NoError(t, ctx.Err(), "eventbus %s did not exit within a minute; %s", strings.Join(args, " "), r)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else {
		require.NoError(t, err, "eventbus %s", strings.Join(args, " "))
	}
	return r
}

// cli runs the binary with the test's environment.
func (e *env) cli(args ...string) cliResult {
	e.t.Helper()
	return runCLI(e.t, e.bin, e.environ(), args...)
}

// requireOneLine requires that s is exactly one line naming want, without a
// panic or a stack trace.
func requireOneLine(t *testing.T, s, want string) {
	t.Helper()
	require.True(t, strings.HasSuffix(s, "\n") && strings.Count(s, "\n") == 1, "exactly one line, got %q", s)
	require.Contains(t, s, want)
	require.NotContains(t, s, "panic")
	require.NotContains(t, s, "goroutine")
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// unreachableEnviron is an environment without the caller's EVENTBUS_*
// variables, pointing at services that do not exist: a command that got past
// its configuration check fails or hangs instead of touching anything.
func unreachableEnviron() []string {
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVENTBUS_") {
			environ = append(environ, kv)
		}
	}
	return append(environ,
		"EVENTBUS_DATABASE_URL=postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
		"EVENTBUS_NATS_URL=nats://127.0.0.1:1",
		"EVENTBUS_HTTP_ADDR=",
	)
}

func TestBadConfigurationExitsTwoWithOneLine(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	for _, c := range []struct{ variable, value string }{
		{"EVENTBUS_MAX_RETRIES", "abc"},
		{"EVENTBUS_MAX_RETRIES", "0"},
		{"EVENTBUS_DATABASE_URL", "postgres://host:notaport/db"},
		{"EVENTBUS_SLOT", "Bad-Name"},
		{"EVENTBUS_HTTP_ADDR", "nonsense"},
		{"EVENTBUS_STANDBY_INTERVAL", "1h"},
	} {
		for _, command := range []string{"run", "status"} {
			t.Run(fmt.Sprintf("%s=%s/%s", c.variable, c.value, command), func(t *testing.T) {
				t.Parallel()
				r := runCLI(t, bin, append(unreachableEnviron(), c.variable+"="+c.value), command)
				require.Equal(t, 2, r.code, "%s", r)
				requireOneLine(t, r.stderr, c.variable)
				require.Empty(t, r.stdout)
			})
		}
	}
}

func TestUnknownCommandAndHelp(t *testing.T) {
	t.Parallel()
	bin := binary(t)

	r := runCLI(t, bin, unreachableEnviron(), "frobnicate")
	require.Equal(t, 2, r.code, "%s", r)
	requireOneLine(t, r.stderr, "frobnicate")

	r = runCLI(t, bin, unreachableEnviron(), "--help")
	require.Equal(t, 0, r.code, "%s", r)
	help := r.stdout + r.stderr
	for _, command := range []string{"migrate", "run", "status", "slot reset", "replay", "verify", "doctor", "publish"} {
		assert.Contains(t, help, command, "--help lists %s", command)
	}
}

func TestCLIPublishIsDelivered(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startRelay()
	const org = "11111111-1111-1111-1111-111111111111"

	r := e.cli("publish", "--event-type", "payment.completed", "--aggregate-type", "payment", "--aggregate-id", "p-1",
		"--payload", `{"amount":100}`, "--metadata", `{"source":"cli"}`, "--organization-id", org)
	require.Equal(t, 0, r.code, "%s", r)
	require.Regexp(t, uuidPattern, strings.TrimSuffix(r.stdout, "\n"), "stdout is the new id")
	require.Equal(t, 1, strings.Count(r.stdout, "\n"), "stdout is one line")
	id := strings.TrimSpace(r.stdout)

	e.waitProcessed(1, 30*time.Second)
	msgs := e.streamMessages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, "events.payment.completed", m.Subject)
	assert.Equal(t, id, m.Header.Get("Nats-Msg-Id"))
	assert.Equal(t, org, m.Header.Get("Eventbus-Organization-Id"))
	assert.Equal(t, id, m.Body.ID)
	assert.Equal(t, "payment.completed", m.Body.EventType)
	assert.Equal(t, "payment", m.Body.AggregateType)
	assert.Equal(t, "p-1", m.Body.AggregateID)
	if assert.NotNil(t, m.Body.OrganizationID) {
		assert.Equal(t, org, *m.Body.OrganizationID)
	}
	assert.JSONEq(t, `{"amount":100}`, string(m.Body.Payload))
	assert.JSONEq(t, `{"source":"cli"}`, string(m.Body.Metadata))

	// Bad input: exit 2, one line naming the flag, no row.
	r = e.cli("publish", "--event-type", "payment.completed", "--aggregate-type", "payment", "--aggregate-id", "p-2",
		"--payload", `{"amount":`)
	require.Equal(t, 2, r.code, "%s", r)
	requireOneLine(t, r.stderr, "--payload")

	r = e.cli("publish", "--aggregate-type", "payment", "--aggregate-id", "p-3")
	require.Equal(t, 2, r.code, "%s", r)
	requireOneLine(t, r.stderr, "--event-type")

	r = e.cli("publish", "--event-type", "payment.completed", "--aggregate-type", "payment", "--aggregate-id", "p-4",
		"--organization-id", "not-a-uuid")
	require.Equal(t, 2, r.code, "%s", r)
	requireOneLine(t, r.stderr, "--organization-id")

	require.Equal(t, map[string]int{"processed": 1}, e.statusCounts(), "bad input stores no event")
}

// statusJSON is the part of `eventbus status --json` the tests read.
type statusJSON struct {
	Slot              string `json:"slot"`
	Exists            bool   `json:"exists"`
	Active            bool   `json:"active"`
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn"`
	LagBytes          *int64 `json:"lag_bytes"`
	Counts            struct {
		Pending    int `json:"pending"`
		Processing int `json:"processing"`
		Processed  int `json:"processed"`
		Failed     int `json:"failed"`
		Total      int `json:"total"`
	} `json:"counts"`
	Window   string `json:"window"`
	Failures []struct {
		ID           string `json:"id"`
		EventType    string `json:"event_type"`
		RetryCount   int    `json:"retry_count"`
		ErrorMessage string `json:"error_message"`
	} `json:"failures"`
}

func TestStatusReportsSlotCountsAndFailures(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_MAX_RETRIES=1"))
	ctx := t.Context()
	e.startRelay()

	e.publish(ctx, "order.placed", "s-1", `{}`)
	bad := e.insertDirect(ctx, "bad type", "s-2", `{}`, "pending") // publish_event refuses it
	e.publish(ctx, "order.placed", "s-3", `{}`)
	e.publish(ctx, "order.placed", "s-4", `{}`)
	e.waitStatuses(map[string]int{"processed": 3, "failed": 1}, 60*time.Second)

	r := e.cli("status", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	var st statusJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), "status --json output: %s", r.stdout)
	assert.Equal(t, e.slot, st.Slot)
	assert.True(t, st.Exists, "exists")
	assert.True(t, st.Active, "active while the relay streams")
	assert.NotEmpty(t, st.ConfirmedFlushLSN, "confirmed_flush_lsn")
	if assert.NotNil(t, st.LagBytes, "lag_bytes is a number") {
		assert.GreaterOrEqual(t, *st.LagBytes, int64(0))
	}
	assert.Equal(t, 0, st.Counts.Pending, "counts.pending")
	assert.Equal(t, 0, st.Counts.Processing, "counts.processing")
	assert.Equal(t, 3, st.Counts.Processed, "counts.processed")
	assert.Equal(t, 1, st.Counts.Failed, "counts.failed")
	assert.Equal(t, 4, st.Counts.Total, "counts.total")
	assert.Equal(t, "24h", st.Window)
	require.Len(t, st.Failures, 1, "failures")
	assert.Equal(t, bad, st.Failures[0].ID)
	assert.Equal(t, "bad type", st.Failures[0].EventType)
	assert.Equal(t, 1, st.Failures[0].RetryCount)
	assert.NotEmpty(t, st.Failures[0].ErrorMessage, "failures[0].error_message")

	r = e.cli("status")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, e.slot)
	assert.Contains(t, r.stdout, bad, "the text form lists the failed event")
}

func TestReplayRepublishesWithAFreshMsgID(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()

	const replayed = "replay.me"
	var ids []string
	for i := range 5 {
		ids = append(ids, e.publish(ctx, replayed, fmt.Sprintf("r-%d", i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	e.publish(ctx, "other.type", "o-1", `{}`)
	e.publish(ctx, "other.type", "o-2", `{}`)
	e.waitProcessed(7, 30*time.Second)
	require.Equal(t, 7, e.streamCount())
	processedAt := e.processedAt()

	r := e.cli("replay", "--event-type", replayed, "--dry-run")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "would replay 5 events")
	require.Equal(t, 7, e.streamCount(), "a dry run publishes nothing")

	r = e.cli("replay", "--event-type", replayed)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "replayed 5 events")
	require.Equal(t, 12, e.streamCount(), "5 replayed messages, inside the duplicate window")

	originals := map[string]message{}
	copies := map[string]int{}
	for _, m := range e.streamMessages() {
		if m.Body.EventType != replayed {
			assert.Empty(t, m.Header.Get("Eventbus-Replay"), "event %s was not replayed", m.Body.ID)
			continue
		}
		if m.Header.Get("Eventbus-Replay") == "" {
			assert.Equal(t, m.Body.ID, m.Header.Get("Nats-Msg-Id"), "the original's Nats-Msg-Id is the event id")
			originals[m.Body.ID] = m
			continue
		}
		assert.Equal(t, "true", m.Header.Get("Eventbus-Replay"))
		assert.NotEqual(t, m.Body.ID, m.Header.Get("Nats-Msg-Id"), "a replay's Nats-Msg-Id differs from the event id")
		assert.NotEmpty(t, m.Header.Get("Nats-Msg-Id"))
		orig, ok := originals[m.Body.ID]
		if assert.True(t, ok, "replay of %s follows its original", m.Body.ID) {
			assert.JSONEq(t, string(orig.Raw), string(m.Raw), "a replay carries the original body")
			assert.Equal(t, orig.Subject, m.Subject)
		}
		copies[m.Body.ID]++
	}
	for _, id := range ids {
		assert.Equal(t, 1, copies[id], "replays of %s", id)
	}
	require.Len(t, copies, 5)
	require.Equal(t, processedAt, e.processedAt(), "a replay changes no row")

	r = e.cli("replay", "--id", ids[1], "--id", ids[3])
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "replayed 2 events")
	require.Equal(t, 14, e.streamCount())
	msgs := e.streamMessages()
	assert.ElementsMatch(t, []string{ids[1], ids[3]}, []string{msgs[12].Body.ID, msgs[13].Body.ID})

	r = e.cli("replay", "--status", "bogus")
	require.Equal(t, 2, r.code, "%s", r)
	requireOneLine(t, r.stderr, "--status")
	require.Equal(t, 14, e.streamCount())
	require.Equal(t, processedAt, e.processedAt(), "a replay changes no row")
}

// A replay the broker refuses some events of prints one progress line and
// one summary naming the refused event, and exits 1.
func TestReplayReportsRefusedEventsInOneSummary(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_MAX_RETRIES=1"))
	ctx := t.Context()
	e.startRelay()
	for i := range 3 {
		e.publish(ctx, "replay.me", fmt.Sprintf("r-%d", i), `{}`)
	}
	bad := e.insertDirect(ctx, "bad type", "r-bad", `{}`, "pending") // not a NATS subject
	e.waitStatuses(map[string]int{"processed": 3, "failed": 1}, 60*time.Second)

	r := e.cli("replay", "--since", "1h")
	require.Equal(t, 1, r.code, "%s", r)
	assert.Empty(t, r.stdout, "the summary is the error line")
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	require.Len(t, lines, 2, "one progress line, one summary: %s", r)
	assert.Regexp(t, `^replayed events: 3 of 4 \(\d+/s\)$`, lines[0])
	assert.Regexp(t, `^eventbus replay: replayed 3 of 4 events; 1 could not be replayed: `+bad+`: event_type "bad type" is not a valid NATS subject`, lines[1])
	require.Equal(t, 6, e.streamCount(), "the three good events replayed")
}

// processedAt returns status and processed_at of every row, by id.
func (e *env) processedAt() map[string]string {
	e.t.Helper()
	rows, err := e.db.Query(e.t.Context(), `SELECT id::text, status || ' ' || coalesce(processed_at::text, 'null') FROM public.event_bus`)
	require.NoError(e.t, err)
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var id, s string
		require.NoError(e.t, rows.Scan(&id, &s))
		m[id] = s
	}
	require.NoError(e.t, rows.Err())
	return m
}

func TestRedriveOfARowInsertedFailed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()
	warm := e.warmUp()

	var failed string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload, status, retry_count, error_message)
		VALUES ('redrive.me', 'test', 'r-1', '{"n":1}', 'failed', 5, 'x') RETURNING id::text`).Scan(&failed))
	marker := e.publish(ctx, "test.marker", "m", `{}`)
	e.waitStatuses(map[string]int{"processed": 2, "failed": 1}, 30*time.Second)
	var got []string
	for _, m := range e.streamMessages() {
		got = append(got, m.Body.ID)
	}
	require.Equal(t, []string{warm, marker}, got, "a row inserted failed is not published")
	r := e.eventRow(ctx, failed)
	require.Equal(t, "failed", r.Status)
	require.Equal(t, 5, r.RetryCount)

	var handedBack int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT public.process_pending_events(100)`).Scan(&handedBack))
	require.Equal(t, 1, handedBack, "process_pending_events hands the failed row back")
	e.waitProcessed(3, 30*time.Second)
	msgs := e.streamMessages()
	require.Len(t, msgs, 3)
	m := msgs[2]
	assert.Equal(t, failed, m.Body.ID)
	assert.Equal(t, failed, m.Header.Get("Nats-Msg-Id"), "a redrive keeps the plain Nats-Msg-Id")
	assert.Empty(t, m.Header.Get("Eventbus-Replay"), "a redrive is not a replay")
	assert.Equal(t, "events.redrive.me", m.Subject)
	assert.JSONEq(t, `{"n":1}`, string(m.Body.Payload))
	row := e.eventRow(ctx, failed)
	assert.Equal(t, "processed", row.Status)
	assert.NotNil(t, row.ProcessedAt, "processed_at")
}

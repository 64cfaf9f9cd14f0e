package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loseFromStream deletes the messages whose Nats-Msg-Id is one of ids (the
// originals, not replayed copies), as a broker losing acknowledged writes
// would, and returns ids.
func (e *env) loseFromStream(ids ...string) []string {
	e.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var seqs []uint64
	e.eachStreamMessage(func(m jetstream.Msg) {
		if want[m.Headers().Get(jetstream.MsgIDHeader)] {
			md, err := m.Metadata()
			require.NoError(e.t, err)
			seqs = append(seqs, md.Sequence.Stream)
		}
	})
	require.Len(e.t, seqs, len(ids), "messages of %v in the stream", ids)
	stream, err := e.jetStream().Stream(e.t.Context(), e.stream)
	require.NoError(e.t, err)
	for _, seq := range seqs {
		require.NoError(e.t, stream.DeleteMsg(e.t.Context(), seq))
	}
	return ids
}

// jetStream connects to the test's NATS server until the test ends.
func (e *env) jetStream() jetstream.JetStream {
	e.t.Helper()
	nc, err := nats.Connect(e.nats.URL())
	require.NoError(e.t, err)
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(e.t, err)
	return js
}

// createdAt is the created_at of event id, in the form --since takes.
func (e *env) createdAt(id string) string {
	e.t.Helper()
	var at time.Time
	require.NoError(e.t, e.db.QueryRow(e.t.Context(), `SELECT created_at FROM public.event_bus WHERE id = $1`, id).Scan(&at))
	return at.UTC().Format(time.RFC3339Nano)
}

// listedMissing returns the ids verify listed as missing: the first field of
// each line that starts with an id.
func listedMissing(stdout string) []string {
	var ids []string
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 && uuidPattern.MatchString(f[0]) {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// requireVerified runs verify with args and requires that it exits 0, having
// verified n events and found none missing.
func (e *env) requireVerified(n int, args ...string) {
	e.t.Helper()
	r := e.cli(append([]string{"verify"}, args...)...)
	require.Equal(e.t, 0, r.code, "%s", r)
	require.Contains(e.t, r.stdout, fmt.Sprintf("verified %d processed events created in [", n), "%s", r)
	require.Contains(e.t, r.stdout, "): 0 missing from stream "+e.stream+"\n", "%s", r)
	require.Empty(e.t, listedMissing(r.stdout), "%s", r)
}

// byID returns the stream's messages by the event id of their body.
func (e *env) byID() map[string][]message {
	e.t.Helper()
	m := map[string][]message{}
	for _, msg := range e.streamMessages() {
		m[msg.Body.ID] = append(m[msg.Body.ID], msg)
	}
	return m
}

func TestVerifyFindsAndRepairsLostMessages(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()

	since := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	var ids []string
	for i := range 50 {
		ids = append(ids, e.publish(ctx, "verify.me", fmt.Sprintf("v-%d", i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	e.waitProcessed(50, 60*time.Second)
	rows := e.processedAt()
	e.requireVerified(50, "--since", since)

	// JetStream acked these, the relay marked them processed, and the
	// broker lost them.
	lost := e.loseFromStream(ids[3], ids[17], ids[31], ids[49])
	r := e.cli("verify", "--since", since)
	require.Equal(t, 1, r.code, "%s", r)
	assert.Equal(t, lost, listedMissing(r.stdout), "exactly the lost events, oldest first")
	assert.Contains(t, r.stdout, ids[17]+"  ")
	assert.Contains(t, r.stdout, "  verify.me  v-17\n", "a missing event's line names its type and aggregate")
	assert.Contains(t, r.stdout, "verified 50 processed events created in [")
	assert.Contains(t, r.stdout, "): 4 missing from stream "+e.stream+"\n")
	assert.Contains(t, r.stderr, "eventbus verify: 4 events missing from stream "+e.stream)
	assert.Contains(t, r.stderr, "read events: 50 of 50", "progress, as plain lines when not on a terminal")

	r = e.cli("verify", "--since", since, "--json")
	require.Equal(t, 1, r.code, "%s", r)
	var report struct {
		Stream   string `json:"stream"`
		Verified int    `json:"verified"`
		Missing  int    `json:"missing"`
		Events   []struct {
			ID        string    `json:"id"`
			CreatedAt time.Time `json:"created_at"`
			EventType string    `json:"event_type"`
		} `json:"missing_events"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &report), "verify --json: %s", r)
	assert.Equal(t, e.stream, report.Stream)
	assert.Equal(t, 50, report.Verified)
	assert.Equal(t, 4, report.Missing)
	if assert.Len(t, report.Events, 4) {
		for i, m := range report.Events {
			assert.Equal(t, lost[i], m.ID)
			assert.Equal(t, "verify.me", m.EventType)
			assert.False(t, m.CreatedAt.IsZero(), "created_at")
		}
	}

	// The broker comes back from the crash: its duplicate window is rebuilt
	// from what it stored, so the lost events go back under their own ids.
	e.nats.Shutdown()
	require.NoError(t, e.nats.Restart())
	r = e.cli("verify", "--since", since, "--repair")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Equal(t, lost, listedMissing(r.stdout))
	assert.Contains(t, r.stdout, "): 4 missing from stream "+e.stream+"\n")
	assert.Contains(t, r.stdout, "republished 4 events to stream "+e.stream+"\n")
	stored := e.byID()
	for _, id := range ids {
		require.Len(t, stored[id], 1, "event %s once in the stream", id)
	}
	for _, id := range lost {
		m := stored[id][0]
		assert.Equal(t, id, m.Header.Get(jetstream.MsgIDHeader), "a repair publishes under the event's id")
		assert.Empty(t, m.Header.Get("Eventbus-Replay"), "a repair is not a replay")
		assert.Equal(t, "events.verify.me", m.Subject)
	}
	e.requireVerified(50, "--since", since)

	// Lost while the server kept running: its duplicate window still holds
	// the ids and would drop them, so they go back as replays.
	lost = e.loseFromStream(ids[5], ids[6])
	r = e.cli("verify", "--since", since, "--repair")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Equal(t, lost, listedMissing(r.stdout))
	assert.Contains(t, r.stdout, "republished 2 events to stream "+e.stream+" (2 as replays")
	stored = e.byID()
	for _, id := range lost {
		require.Len(t, stored[id], 1, "event %s", id)
		assert.Equal(t, "true", stored[id][0].Header.Get("Eventbus-Replay"))
	}
	e.requireVerified(50, "--since", since)

	// A replayed copy counts as the event present.
	r = e.cli("replay", "--id", ids[10])
	require.Equal(t, 0, r.code, "%s", r)
	e.loseFromStream(ids[10])
	e.requireVerified(50, "--since", since)

	// A window without the lost event does not report it.
	e.loseFromStream(ids[40])
	e.requireVerified(40, "--since", since, "--until", e.createdAt(ids[40]))
	e.requireVerified(9, "--since", e.createdAt(ids[41]))
	r = e.cli("verify", "--since", e.createdAt(ids[40]), "--until", e.createdAt(ids[41]))
	require.Equal(t, 1, r.code, "%s", r)
	assert.Equal(t, []string{ids[40]}, listedMissing(r.stdout))
	assert.Contains(t, r.stdout, "verified 1 processed events created in [")

	require.Equal(t, rows, e.processedAt(), "verify changes no row")
}

func TestVerifyBadFlagsExitTwo(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, "-since"},
		{[]string{"--until", "2026-13-01"}, "-until"},
		{[]string{"--since", "2026-12-02", "--until", "2026-12-01"}, "--until"},
		{[]string{"--repair=maybe"}, "-repair"},
		{[]string{"--frobnicate"}, "frobnicate"},
		{[]string{"EVENTBUS"}, `unexpected argument "EVENTBUS"`},
	} {
		r := runCLI(t, bin, unreachableEnviron(), append([]string{"verify"}, c.args...)...)
		require.Equal(t, 2, r.code, "verify %v: %s", c.args, r)
		requireOneLine(t, r.stderr, c.want)
		require.Empty(t, r.stdout)
	}
}

// A stream that is not there, or that removes what its consumers took, has
// nothing to verify against: one line, exit 1.
func TestVerifyRefusesAStreamItCannotVerify(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.cli("verify")
	require.Equal(t, 1, r.code, "%s", r)
	requireOneLine(t, r.stderr, "stream "+e.stream+" does not exist")

	_, err := e.jetStream().CreateStream(t.Context(), jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}, Retention: jetstream.WorkQueuePolicy})
	require.NoError(t, err)
	r = runCLI(t, e.bin, append(e.environ(), "EVENTBUS_STREAM=WORK"), "verify", "--repair")
	require.Equal(t, 1, r.code, "%s", r)
	requireOneLine(t, r.stderr, "stream WORK has WorkQueue retention")
}

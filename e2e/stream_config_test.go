package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// streamInfo waits until stream exists and returns its info.
func (e *env) streamInfo(js jetstream.JetStream, stream string) *jetstream.StreamInfo {
	e.t.Helper()
	var info *jetstream.StreamInfo
	eventually(e.t, 30*time.Second, func() (bool, string) {
		s, err := js.Stream(e.t.Context(), stream)
		if err != nil {
			return false, fmt.Sprintf("stream %s: %v", stream, err)
		}
		info = s.CachedInfo()
		return true, ""
	})
	return info
}

// The stream the relay creates (CONTRACT: "<STREAM> over <prefix>.> when
// missing (file storage)", v2: with EVENTBUS_DUPLICATE_WINDOW and
// EVENTBUS_STREAM_MAX_AGE) has exactly the configured limits; 0 leaves each
// to JetStream: a 2-minute window, no age limit. The log prints both as text.
func TestRelayCreatesTheStreamAsConfigured(t *testing.T) {
	t.Parallel()
	e := setup(t)
	js := e.jetStream()
	for _, tc := range []struct {
		name     string
		env      []string
		subjects string
		window   time.Duration
		maxAge   time.Duration
		logged   string
	}{
		{name: "defaults", subjects: "events.>", window: 10 * time.Minute, maxAge: 7 * 24 * time.Hour,
			logged: "duplicate_window=10m0s max_age=168h0m0s"},
		{name: "window_0", env: []string{"EVENTBUS_DUPLICATE_WINDOW=0"}, subjects: "events.>", window: 2 * time.Minute, maxAge: 7 * 24 * time.Hour},
		{name: "max_age_0s", env: []string{"EVENTBUS_STREAM_MAX_AGE=0s"}, subjects: "events.>", window: 10 * time.Minute},
		{name: "both_set", env: []string{"EVENTBUS_DUPLICATE_WINDOW=90s", "EVENTBUS_STREAM_MAX_AGE=3d", "EVENTBUS_SUBJECT_PREFIX=crm"},
			subjects: "crm.>", window: 90 * time.Second, maxAge: 72 * time.Hour, logged: "duplicate_window=1m30s max_age=72h0m0s"},
	} {
		stream := e.stream + "_" + tc.name
		relay := e.startRelayEnv(append([]string{"EVENTBUS_STREAM=" + stream}, tc.env...)...)
		// The stream exists a moment before the relay logs it: a stop in
		// between would leave the log line unwritten.
		eventually(t, 30*time.Second, func() (bool, string) {
			return strings.Contains(relay.out.String(), `msg="stream created"`), tc.name + ": the relay logs the stream it created"
		})
		cfg := e.streamInfo(js, stream).Config
		assert.Equal(t, []string{tc.subjects}, cfg.Subjects, tc.name)
		assert.Equal(t, jetstream.FileStorage, cfg.Storage, tc.name)
		assert.Equal(t, tc.window, cfg.Duplicates, "%s: duplicate window", tc.name)
		assert.Equal(t, tc.maxAge, cfg.MaxAge, "%s: max age", tc.name)
		require.Equal(t, 0, relay.stop(), relay.out.String())
		if tc.logged != "" {
			assert.Contains(t, relay.out.String(), tc.logged, tc.name)
		}
		// The next stream binds the same subjects.
		require.NoError(t, js.DeleteStream(t.Context(), stream))
	}
}

// An existing stream is never changed (CONTRACT v2): its storage, window,
// age and description stay the operator's, it is not recreated, and no
// update of it is ever sent, while the relay publishes to it with other
// settings configured.
func TestExistingStreamIsLeftAlone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	js := e.jetStream()
	created, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: e.stream, Subjects: []string{"events.>"}, Storage: jetstream.MemoryStorage,
		Duplicates: 30 * time.Second, MaxAge: time.Hour,
	})
	require.NoError(t, err)
	// Every update of the stream is announced on this subject; the
	// operator's own update shows that the subscription sees them.
	updates, err := js.Conn().SubscribeSync("$JS.EVENT.ADVISORY.STREAM.UPDATED." + e.stream)
	require.NoError(t, err)
	defer func() { require.NoError(t, updates.Unsubscribe()) }()
	require.NoError(t, js.Conn().Flush())
	cfg := created.CachedInfo().Config
	cfg.Description = "the operator's"
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	_, err = updates.NextMsg(10 * time.Second)
	require.NoError(t, err, "the operator's update is announced")
	before := e.streamInfo(js, e.stream)

	relay := e.startRelayEnv("EVENTBUS_DUPLICATE_WINDOW=5m", "EVENTBUS_STREAM_MAX_AGE=2d")
	id := e.warmUp()
	require.Equal(t, 0, relay.stop(), relay.out.String())

	after := e.streamInfo(js, e.stream)
	assert.Equal(t, before.Config, after.Config, "the stream's configuration")
	assert.Equal(t, before.Created, after.Created, "the stream was not recreated")
	require.NoError(t, js.Conn().Flush())
	n, _, err := updates.Pending()
	require.NoError(t, err)
	assert.Zero(t, n, "updates of the stream announced while the relay ran")
	msgs := e.streamMessages()
	require.Len(t, msgs, 1)
	assert.Equal(t, id, msgs[0].Body.ID)
	assert.Contains(t, relay.out.String(), "its settings are the operator's")
}

// Every publish names the stream that may store it (header
// Nats-Expected-Stream = EVENTBUS_STREAM): when the operator replaces
// <STREAM> by another stream over the same subjects, that stream refuses
// the relay's events, which stay pending instead of being marked processed
// on an ack from a stream nobody configured. Once <STREAM> is back, they are
// delivered to it, once. Without the header, the other stream stores the
// event and it is marked processed.
func TestAnotherStreamOnTheSubjectsNeverAcksAnEvent(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr))
	ctx := t.Context()
	js := e.jetStream()
	relay := e.startRelay()
	e.warmUp()

	require.NoError(t, js.DeleteStream(ctx, e.stream))
	other := e.stream + "_other"
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: other, Subjects: []string{"events.>"}})
	require.NoError(t, err)
	id := e.publish(ctx, "header.check", "h-1", `{}`)
	eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(relay.out.String(), "expected stream does not match"),
			"the relay logs the other stream's refusal"
	})
	s, err := js.Stream(ctx, other)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, info.State.Msgs, "messages stored by the other stream")
	var status string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT status FROM public.event_bus WHERE id = $1`, id).Scan(&status))
	assert.Equal(t, "pending", status)
	// Nothing is delivered meanwhile: not ready, saying why.
	eventually(t, 30*time.Second, func() (bool, string) {
		code, body := httpGet(addr, "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "publishing fails, retrying: ") &&
			strings.Contains(body, "expected stream does not match"), fmt.Sprintf("/readyz: %d %q", code, body)
	})

	require.NoError(t, js.DeleteStream(ctx, other))
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: e.stream, Subjects: []string{"events.>"}})
	require.NoError(t, err)
	e.waitProcessed(2, 60*time.Second)
	e.assertStreamHoldsOnce([]string{id})
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)
	relay.requireRunning()
}

// A missing <STREAM> that cannot be created because another stream already
// binds <prefix>.> (or part of it) is refused at start, like a stream that
// does not bind it: one line naming both streams, exit non-zero (before: the
// relay retried creating it forever).
func TestMissingStreamOverlappingAnotherIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	other := e.stream + "_leads"
	_, err := e.jetStream().CreateStream(t.Context(), jetstream.StreamConfig{Name: other, Subjects: []string{"events.lead.>"}})
	require.NoError(t, err)

	relay := e.startRelay()
	select {
	case <-relay.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("relay did not exit:\n%s", relay.out.String())
	}
	require.Error(t, relay.err, "exit code")
	out := relay.out.String()
	assert.Contains(t, out, fmt.Sprintf("cannot create stream %s over events.>: stream %s binds subjects in it", e.stream, other))
	assert.Equal(t, 1, strings.Count(out, "cannot create stream"), "one line:\n%s", out)
	assert.NotContains(t, out, "panic")
}

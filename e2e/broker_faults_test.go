package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// publishBurst publishes n events in transactions of perTxn through
// publish_event and returns their ids in commit order.
func (e *env) publishBurst(eventType string, n, perTxn int) []string {
	e.t.Helper()
	var ids []string
	for start := 0; start < n; start += perTxn {
		rows, err := e.db.Query(e.t.Context(), `SELECT public.publish_event($1, 'test', g::text)::text
			FROM generate_series($2::int, $3::int) g ORDER BY g`, eventType, start, min(start+perTxn, n)-1)
		require.NoError(e.t, err)
		for rows.Next() {
			var id string
			require.NoError(e.t, rows.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(e.t, rows.Err())
	}
	return ids
}

// assertStreamHoldsOnce asserts that the stream holds each of ids exactly
// once and nothing else.
func (e *env) assertStreamHoldsOnce(ids []string) {
	e.t.Helper()
	seen := map[string]int{}
	for _, m := range e.streamMessages() {
		seen[m.Body.ID]++
	}
	var missing, twice []string
	for _, id := range ids {
		switch seen[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			twice = append(twice, id)
		}
	}
	assert.Empty(e.t, missing, "events missing from the stream")
	assert.Empty(e.t, twice, "events stored more than once")
	assert.Len(e.t, seen, len(ids), "distinct events in the stream")
}

// A slow broker is back-pressure, not an outage: with every byte from NATS
// delayed by 300 ms, a burst of 3,000 events through a publish window of 100
// (so the window is what limits the rate: ~330 events/s) is delivered, once
// each, by one replication session (before: the session ended on "stalled
// with too many outstanding async published messages" whenever the window
// was full, again and again).
func TestSlowBrokerIsBackPressure(t *testing.T) {
	e := setup(t)
	proxy := testenv.StartLatencyProxy(t, strings.TrimPrefix(e.nats.URL(), "nats://"), 300*time.Millisecond)
	relay := e.startRelayEnv("EVENTBUS_NATS_URL=nats://"+proxy.Addr(), "EVENTBUS_PUBLISH_WINDOW=100")
	e.waitSlotActive(true)

	ids := e.publishBurst("test.slow", 3000, 1000)
	e.waitProcessed(len(ids), time.Minute)
	e.assertStreamHoldsOnce(ids)
	out := relay.out.String()
	assert.NotContains(t, out, "relay session ended", "one session throughout")
	// The stream would drop copies as duplicates: the log says whether any
	// were sent.
	assert.NotContains(t, out, "sending the unacked events again", "nothing is sent twice")
	assert.Equal(t, 0, relay.stop())
}

// An operator's stream that does not bind <prefix>.> is refused at start
// with one line naming it and its subjects (before: the first event no
// stream took restarted the session forever, and nothing behind it was
// marked).
func TestStreamNotBindingThePrefixIsRefused(t *testing.T) {
	e := setup(t)
	nc, err := nats.Connect(e.nats.URL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(t.Context(), jetstream.StreamConfig{Name: e.stream, Subjects: []string{"events.lead.>"}})
	require.NoError(t, err)

	relay := e.startRelay()
	select {
	case <-relay.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("relay did not exit:\n%s", relay.out.String())
	}
	require.Error(t, relay.err, "exit code")
	out := relay.out.String()
	assert.Contains(t, out, fmt.Sprintf("stream %s binds events.lead.>, not events.>", e.stream))
	assert.NotContains(t, out, "panic")
}

// A message the stream refuses in its PubAck (over the stream's
// max_msg_size, here) is retried in place and then failed, while every event
// published around it is marked processed without being published twice
// (before: each refusal restarted the session and republished the window
// behind it).
func TestRefusalInThePubAckIsRetriedInPlace(t *testing.T) {
	e := setup(t, withEnv("EVENTBUS_MAX_RETRIES=3"))
	nc, err := nats.Connect(e.nats.URL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(t.Context(), jetstream.StreamConfig{Name: e.stream, Subjects: []string{"events.>"}, MaxMsgSize: 2048})
	require.NoError(t, err)
	relay := e.startRelay()
	e.waitSlotActive(true)

	var ok []string
	for i := range 20 {
		ok = append(ok, e.publish(t.Context(), "test.small", fmt.Sprint(i), `{}`))
	}
	big := e.publish(t.Context(), "test.big", "big", fmt.Sprintf(`{"pad": %q}`, strings.Repeat("x", 4096)))
	for i := range 20 {
		ok = append(ok, e.publish(t.Context(), "test.small", fmt.Sprint(20+i), `{}`))
	}
	eventually(t, time.Minute, func() (bool, string) {
		c := e.statusCounts()
		return c["processed"] == len(ok) && c["failed"] == 1, fmt.Sprintf("statuses %v", c)
	})
	var retries int
	var msg string
	require.NoError(t, e.db.QueryRow(t.Context(), `SELECT retry_count, error_message FROM public.event_bus WHERE id = $1`, big).Scan(&retries, &msg))
	assert.Equal(t, 3, retries)
	assert.Contains(t, msg, "maximum")
	e.assertStreamHoldsOnce(ok)
	assert.NotContains(t, relay.out.String(), "relay session ended", "refusals do not end the session")
}

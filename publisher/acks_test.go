package publisher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/internal/devstack/natsserver"
)

// startPublisher starts an embedded JetStream server and a Publisher on
// stream ACKS over acks.>.
func startPublisher(t *testing.T, opts Options) (*natsserver.Server, *Publisher) {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	opts.URL, opts.Stream, opts.SubjectPrefix = srv.URL(), "ACKS", "acks"
	p, err := Connect(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	require.NoError(t, p.EnsureStream(t.Context()))
	return srv, p
}

func testEvent(i int) *event.Event {
	return &event.Event{
		ID:            fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
		EventType:     "lead.created",
		AggregateType: "lead",
		AggregateID:   "00000000-0000-4000-8000-000000000001",
		Payload:       []byte(`{"n":1}`),
		Metadata:      []byte(`{}`),
	}
}

func TestAcksReachTheirPublishesWhoeverWaits(t *testing.T) {
	_, p := startPublisher(t, Options{})
	const n = 500
	acks := make([]Ack, n)
	for i := range n {
		a, err := p.Publish(testEvent(i))
		require.NoError(t, err)
		acks[i] = a
	}
	// Waited for last to first: the first wait takes every answer off the
	// channel and hands each to its own publish.
	seqs := map[uint64]bool{}
	for i := n - 1; i >= 0; i-- {
		seq, dup, err := acks[i].WaitStored(t.Context())
		require.NoError(t, err, "publish %d", i)
		assert.False(t, dup)
		seqs[seq] = true
	}
	assert.Len(t, seqs, n, "every publish got a sequence of its own")
	assert.True(t, seqs[1] && seqs[n], "sequences 1…%d", n)

	// The same ids again: duplicates, acked with the sequences stored first.
	again, err := p.Publish(testEvent(7))
	require.NoError(t, err)
	seq, dup, err := again.WaitStored(t.Context())
	require.NoError(t, err)
	assert.True(t, dup)
	assert.Equal(t, uint64(8), seq)
}

func TestAckOfAStreamThatRefusesIsTheStreamsError(t *testing.T) {
	_, p := startPublisher(t, Options{})
	// Only another stream may store it: the PubAck carries JetStream's error.
	p.expectStream = []string{"ANOTHER"}
	a, err := p.Publish(testEvent(1))
	require.NoError(t, err)
	err = a.Wait(t.Context())
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.NotErrorIs(t, err, ErrRejected)
}

func TestAckWithoutAStreamIsNoResponders(t *testing.T) {
	_, p := startPublisher(t, Options{})
	p.opts.SubjectPrefix = "nostream"
	started := time.Now()
	a, err := p.Publish(testEvent(1))
	require.NoError(t, err)
	err = a.Wait(t.Context())
	require.ErrorIs(t, err, jetstream.ErrNoStreamResponse)
	assert.GreaterOrEqual(t, time.Since(started), noResponderRetries*noResponderWait, "tried again before giving up")
}

// publishToSilence makes p publish to silent.>, where a plain subscriber
// listens: the server has a responder, so no 503, and nobody answers.
func publishToSilence(t *testing.T, srv *natsserver.Server, p *Publisher) {
	t.Helper()
	nc, err := nats.Connect(srv.URL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	_, err = nc.Subscribe("silent.>", func(*nats.Msg) {})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	p.opts.SubjectPrefix = "silent"
}

func TestAckNeverAnsweredTimesOut(t *testing.T) {
	srv, p := startPublisher(t, Options{AckTimeout: 300 * time.Millisecond})
	publishToSilence(t, srv, p)
	a, err := p.Publish(testEvent(1))
	require.NoError(t, err)
	err = a.Wait(t.Context())
	require.ErrorIs(t, err, jetstream.ErrAsyncPublishTimeout)

	// A wait that starts after the deadline fails at once the same way.
	late, err := p.Publish(testEvent(2))
	require.NoError(t, err)
	late.pending.deadline = time.Now().Add(-time.Second)
	require.ErrorIs(t, late.Wait(t.Context()), jetstream.ErrAsyncPublishTimeout)
}

func TestAcksOutstandingAtADisconnectFail(t *testing.T) {
	srv, p := startPublisher(t, Options{})
	publishToSilence(t, srv, p)
	a, err := p.Publish(testEvent(1))
	require.NoError(t, err)
	srv.Shutdown()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = a.Wait(ctx)
	require.ErrorIs(t, err, nats.ErrDisconnected, "failed by the disconnection, well before the 10 s ack timeout")
}

func TestWaitPrefersAnArrivedAckOverAnEndedContext(t *testing.T) {
	_, p := startPublisher(t, Options{})
	a, err := p.Publish(testEvent(1))
	require.NoError(t, err)
	require.NoError(t, p.nc.Flush()) // the PubAck is on its way once the PONG is back
	deadline := time.Now().Add(5 * time.Second)
	for len(p.acks.replies) == 0 {
		require.True(t, time.Now().Before(deadline), "no PubAck arrived")
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.NoError(t, a.Wait(ctx))
}

func TestParsePlainPubAck(t *testing.T) {
	for in, want := range map[string]uint64{
		`{"stream":"EVENTBUS","seq":1}`:                    1,
		`{"stream":"E","seq":9999999999999999999}`:         9999999999999999999,
		`{"stream":"EVENTBUS-2_x","seq":1234567890123456}`: 1234567890123456,
	} {
		seq, ok := parsePlainPubAck([]byte(in))
		assert.True(t, ok, in)
		assert.Equal(t, want, seq, in)
	}
	// Everything else is left to encoding/json.
	for _, in := range []string{
		`{"stream":"EVENTBUS","seq":1,"duplicate":true}`,
		`{"stream":"EVENTBUS","domain":"hub","seq":1}`,
		`{"error":{"code":503,"err_code":10077,"description":"x"}}`,
		`{"stream":"","seq":1}`,
		`{"stream":"A\"B","seq":1}`,
		`{"stream":"EVENTBUS","seq":}`,
		`{"stream":"EVENTBUS","seq":-1}`,
		`{"stream":"EVENTBUS","seq":1.5}`,
		`{"stream":"EVENTBUS","seq":99999999999999999999}`,
		`{"stream":"EVENTBUS","seq":1} `,
		`{"stream": "EVENTBUS", "seq": 1}`,
		``,
	} {
		_, ok := parsePlainPubAck([]byte(in))
		assert.False(t, ok, in)
	}
}

// TestTheServersPubAckTakesTheFastPath keeps parsePlainPubAck honest: the
// server's answer to a plain publish must be the form it reads.
func TestTheServersPubAckTakesTheFastPath(t *testing.T) {
	srv, _ := startPublisher(t, Options{})
	nc, err := nats.Connect(srv.URL())
	require.NoError(t, err)
	defer nc.Close()
	reply, err := nc.RequestWithContext(t.Context(), "acks.fast", []byte("{}"))
	require.NoError(t, err)
	seq, ok := parsePlainPubAck(reply.Data)
	require.True(t, ok, "the server's PubAck: %s", reply.Data)
	assert.Equal(t, uint64(1), seq)
}

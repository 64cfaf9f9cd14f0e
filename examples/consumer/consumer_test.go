package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fixture is a NATS server with the stream eventbus creates, and a consumer
// configuration pointing at it.
type fixture struct {
	t   *testing.T
	js  jetstream.JetStream
	cfg Config
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.URL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTBUS", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	return &fixture{t: t, js: js, cfg: Config{
		URL:        ns.URL(),
		Stream:     "EVENTBUS",
		Filter:     "events.lead.>",
		Name:       "test-consumer",
		MaxDeliver: 5,
		AckWait:    5 * time.Second,
		RetryDelay: 20 * time.Millisecond,
		Remember:   100,
		Log:        testenv.Logger(t),
	}}
}

// publish stores an event as the relay does; msgID is the Nats-Msg-Id, which
// differs from the event id for a replay.
func (f *fixture) publish(eventType, id, msgID string, replay bool) {
	f.t.Helper()
	m := nats.NewMsg("events." + eventType)
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	if replay {
		m.Header.Set("Eventbus-Replay", "true")
	}
	m.Data = fmt.Appendf(nil, `{"id":%q,"event_type":%q,"aggregate_type":"lead","aggregate_id":"a-1","organization_id":null,"payload":{"n":1},"metadata":{},"created_at":"2026-11-26T15:07:50.123456Z"}`, id, eventType)
	_, err := f.js.PublishMsg(f.t.Context(), m)
	require.NoError(f.t, err)
}

// start runs the consumer until the returned stop is called (or the test ends).
func (f *fixture) start(h Handler) (stop func()) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(f.t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, f.cfg, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(f.t, err)
			case <-time.After(10 * time.Second):
				f.t.Fatal("consumer did not stop within 10s")
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

// waitSettled waits until the durable consumer has no message left to
// deliver and none awaiting an ack.
func (f *fixture) waitSettled() {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := f.js.Consumer(f.t.Context(), f.cfg.Stream, f.cfg.Name)
		if err == nil {
			info, err := c.Info(f.t.Context())
			require.NoError(f.t, err)
			if info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 && info.Delivered.Stream > 0 {
				return
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("consumer not settled: pending %d, ack pending %d, redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
			}
		} else if time.Now().After(deadline) {
			f.t.Fatalf("consumer %s: %v", f.cfg.Name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder is a handler that counts calls by event id.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	fail  map[string]int // fail the first n calls of an id
}

func newRecorder() *recorder { return &recorder{calls: map[string]int{}, fail: map[string]int{}} }

func (r *recorder) handle(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[e.ID]++
	if r.calls[e.ID] <= r.fail[e.ID] {
		return errors.New("induced failure")
	}
	return nil
}

func (r *recorder) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for k, v := range r.calls {
		m[k] = v
	}
	return m
}

func TestConsumerHandlesEachEventOnceByID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rec := newRecorder()
	f.publish("lead.created", "e1", "e1", false)
	f.publish("lead.created", "e1", "e1:replay:x", true) // a replay: stored again
	f.publish("lead.created", "e1", "e1", false)         // dropped by JetStream's dedup
	f.publish("payment.completed", "p1", "p1", false)    // outside the filter
	f.publish("lead.status_updated", "e2", "e2", false)
	f.start(rec.handle)
	f.waitSettled()
	require.Equal(t, map[string]int{"e1": 1, "e2": 1}, rec.snapshot())
}

func TestConsumerRetriesAFailedEventUntilItSucceeds(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rec := newRecorder()
	rec.fail["e1"] = 2
	f.publish("lead.created", "e1", "e1", false)
	f.publish("lead.created", "e2", "e2", false)
	f.start(rec.handle)
	f.waitSettled()
	require.Equal(t, map[string]int{"e1": 3, "e2": 1}, rec.snapshot(), "two failures, then success")
}

func TestConsumerTerminatesAnEventFailingEveryDelivery(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.cfg.MaxDeliver = 3
	rec := newRecorder()
	rec.fail["e1"] = 1000
	f.publish("lead.created", "e1", "e1", false)
	f.publish("lead.created", "e2", "e2", false)
	f.start(rec.handle)
	f.waitSettled()
	require.Equal(t, map[string]int{"e1": 3, "e2": 1}, rec.snapshot(), "e1 is given up after MaxDeliver")
}

func TestConsumerResumesAfterARestartWithoutRedelivery(t *testing.T) {
	t.Parallel()
	f := setup(t)
	first := newRecorder()
	f.publish("lead.created", "e1", "e1", false)
	f.publish("lead.created", "e2", "e2", false)
	stop := f.start(first.handle)
	f.waitSettled()
	stop()
	require.Equal(t, map[string]int{"e1": 1, "e2": 1}, first.snapshot())

	f.publish("lead.created", "e3", "e3", false)
	second := newRecorder() // a new process: the in-memory dedup is empty
	f.start(second.handle)
	f.waitSettled()
	require.Equal(t, map[string]int{"e3": 1}, second.snapshot(), "the durable consumer resumes after what was acked")
}

package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/internal/testenv"
	"github.com/eventbus/eventbus/internal/testenv/testdb"
	"github.com/eventbus/eventbus/publisher"
)

// benchEnv is a migrated database, a JetStream stream BENCH over events.>
// and a running Deliverer, for the delivery benchmarks.
type benchEnv struct {
	pool *pgxpool.Pool
	nc   *nats.Conn
	js   jetstream.JetStream
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	pool := testdb.MigratedPool(b)
	ns := testenv.NATS(b)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(b.Context(), jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"events.>"}}); err != nil {
		b.Fatal(err)
	}
	return &benchEnv{pool: pool, nc: nc, js: js}
}

// start runs a Deliverer until the benchmark ends.
func (e *benchEnv) start(b *testing.B) {
	b.Helper()
	client := NewClient(ClientOptions{Timeout: 10 * time.Second, AllowPrivate: true})
	d, err := New(e.nc, NewStore(e.pool), Options{Stream: "BENCH", SubjectPrefix: "events", Client: client, ReloadInterval: 200 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.Run(ctx) })
	b.Cleanup(func() { cancel(); wg.Wait(); client.CloseIdleConnections() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := e.js.Consumer(b.Context(), "BENCH", DefaultConsumer); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("the deliverer created no consumer within 30 s")
		}
		time.Sleep(20 * time.Millisecond) // polling for the consumer, with the deadline above
	}
}

// publish sends one event to the stream as the relay would; its payload
// carries the publish time, for latency.
func (e *benchEnv) publish(b *testing.B, i int) jetstream.PubAckFuture {
	ev := &event.Event{
		ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), EventType: "order.placed", AggregateType: "order",
		AggregateID: "o-" + strconv.Itoa(i), Payload: []byte(`{"t":` + strconv.FormatInt(time.Now().UnixMicro(), 10) + `}`), Metadata: []byte(`{}`),
	}
	m, err := publisher.BuildMessage("events", ev)
	if err != nil {
		b.Fatal(err)
	}
	m.Header[jetstream.MsgIDHeader] = []string{ev.ID}
	f, err := e.js.PublishMsgAsync(m)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// receiver is an endpoint that answers 204 and counts, and records each
// delivery's latency from the publish time in its payload.
type receiver struct {
	srv     *httptest.Server
	n       atomic.Int64
	mu      sync.Mutex
	latency []time.Duration
}

func newReceiver(b *testing.B) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Payload struct {
				T int64 `json:"t"`
			} `json:"payload"`
		}
		_ = json.NewDecoder(req.Body).Decode(&body)
		r.mu.Lock()
		r.latency = append(r.latency, time.Since(time.UnixMicro(body.Payload.T)))
		r.mu.Unlock()
		r.n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(r.srv.Close)
	return r
}

func waitDeliveries(b *testing.B, receivers []*receiver, want int64) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var got int64
		for _, r := range receivers {
			got += r.n.Load()
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries within 5 minutes", got, want)
		}
		time.Sleep(5 * time.Millisecond) // polling the counters, with the deadline above
	}
}

// BenchmarkDeliveries measures delivered webhooks per second from the
// stream to local receivers, each event going to every endpoint: b.N events
// published at once, timed until every endpoint has them all. Run with a
// fixed count: go test -run '^$' -bench Deliveries -benchtime 2000x ./webhook
func BenchmarkDeliveries(b *testing.B) {
	for _, endpoints := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("endpoints=%d", endpoints), func(b *testing.B) {
			e := newBenchEnv(b)
			store := NewStore(e.pool)
			receivers := make([]*receiver, endpoints)
			for i := range receivers {
				receivers[i] = newReceiver(b)
				if _, err := store.Add(b.Context(), Endpoint{URL: receivers[i].srv.URL, Enabled: true}); err != nil {
					b.Fatal(err)
				}
			}
			e.start(b)
			b.ResetTimer()
			started := time.Now()
			for i := range b.N {
				e.publish(b, i)
			}
			waitDeliveries(b, receivers, int64(b.N*endpoints))
			elapsed := time.Since(started)
			b.StopTimer()
			b.ReportMetric(float64(b.N*endpoints)/elapsed.Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkDeliveryLatency publishes b.N events at 500 per second to one
// endpoint and reports the publish → webhook received latency (the
// stream's side; the relay's commit → PubAck is in the eventbus bench):
// go test -run '^$' -bench DeliveryLatency -benchtime 5000x ./webhook
func BenchmarkDeliveryLatency(b *testing.B) {
	const rate = 500
	e := newBenchEnv(b)
	r := newReceiver(b)
	if _, err := NewStore(e.pool).Add(b.Context(), Endpoint{URL: r.srv.URL, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	e.start(b)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / rate)); wait > 0 {
			time.Sleep(wait) // the pacing of the load, not a wait for a result
		}
		e.publish(b, i)
	}
	waitDeliveries(b, []*receiver{r}, int64(b.N))
	b.StopTimer()
	r.mu.Lock()
	lat := slices.Clone(r.latency)
	r.mu.Unlock()
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

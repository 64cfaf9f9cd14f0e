package relay

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/internal/testenv"
	"github.com/eventbus/eventbus/internal/testenv/testdb"
	"github.com/eventbus/eventbus/metrics"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
)

// Every goroutine the pipeline and its services start has stopped once Run
// has returned (goleak, in testenv.Main).
func TestMain(m *testing.M) { testenv.Main(m) }

// countingService records how often it was started and whether it is running.
type countingService struct{ starts, running atomic.Int32 }

func (s *countingService) Name() string { return "counting" }

func (s *countingService) Run(ctx context.Context) error {
	s.starts.Add(1)
	s.running.Add(1)
	defer s.running.Add(-1)
	<-ctx.Done()
	return nil
}

// failingService cannot run; the relay must deliver all the same.
type failingService struct{}

func (failingService) Name() string              { return "failing" }
func (failingService) Run(context.Context) error { return fmt.Errorf("bad settings") }

// The relay in-process, against a real PostgreSQL and JetStream: events are
// published in commit order and marked processed, the services run while it
// streams, and after the context ends Run returns nil with every goroutine
// (stages, status writers, services) stopped.
func TestRunDeliversAndStopsEverythingItStarted(t *testing.T) {
	ctx := t.Context()
	pool := testdb.MigratedPool(t)
	dbURL := pool.Config().ConnString()

	stream := "RELAY_" + testenv.UniqueName(t, "s")
	prefix := testenv.UniqueName(t, "ev")
	natsURL := testenv.NATSURL(t)
	pub, err := publisher.Connect(ctx, publisher.Options{URL: natsURL, Stream: stream, SubjectPrefix: prefix, MaxPending: 64})
	require.NoError(t, err)
	defer pub.Close()

	svc := &countingService{}
	slot := testenv.UniqueName(t, "slot")
	r := New(Options{
		DatabaseURL:       dbURL,
		Source:            cdc.Options{Slot: slot, Publication: testenv.UniqueName(t, "pub")},
		MaxRetries:        3,
		PublishWindow:     16, // smaller than the burst: the window fills and drains
		HeartbeatInterval: 50 * time.Millisecond,
		RedriveInterval:   50 * time.Millisecond,
		RedriveAfter:      time.Hour,
		Services:          []Service{svc, failingService{}},
		Log:               testenv.Logger(t),
	}, pool, outbox.NewStore(pool), pub)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	eventually(t, 30*time.Second, "relay ready", r.Ready)
	eventually(t, 10*time.Second, "service started", func() bool { return svc.running.Load() == 1 })

	var want []string
	for i := range 100 {
		var id string
		require.NoError(t, pool.QueryRow(ctx, `SELECT public.publish_event('test.created', 'test', $1)::text`, fmt.Sprint(i)).Scan(&id))
		want = append(want, id)
	}
	eventually(t, 30*time.Second, "every event processed", func() bool {
		var pending int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM public.event_bus WHERE status <> 'processed'`).Scan(&pending))
		return pending == 0
	})
	assert.Equal(t, want, streamIDs(t, natsURL, stream, len(want)), "the stream holds every event once, in commit order")

	stopRun(t, stop, done)
	assert.EqualValues(t, 1, svc.starts.Load(), "one session, one start")
	assert.Zero(t, svc.running.Load(), "services stopped with the session")
	assert.False(t, r.Ready())
}

// stopRun ends a Run started with the context stop cancels and requires
// that it returns nil, on done, within 30 s.
func stopRun(t *testing.T, stop context.CancelFunc, done <-chan error) {
	t.Helper()
	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// streamIDs reads the Nats-Msg-Id of the first n messages of stream, in order.
func streamIDs(t *testing.T, url, stream string, n int) []string {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(t.Context(), stream)
	require.NoError(t, err)
	info, err := s.Info(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, n, info.State.Msgs, "messages in the stream")
	var ids []string
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		require.NoError(t, err)
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return slices.Clip(ids)
}

// PostgreSQL ending the relay's connection while it checks its publication
// at start (a restart, a terminated backend) is not a bad publication: Run
// retries, then streams. The check is held on a lock (CREATE PUBLICATION
// waits for the test's lock on event_bus) so that its backend can be
// terminated mid-statement.
func TestRunRetriesWhenTheDatabaseEndsTheConnectionAtStart(t *testing.T) {
	ctx := t.Context()
	pool := testdb.MigratedPool(t)
	dbURL := pool.Config().ConnString()
	natsURL, stream, pub := connectPublisher(t)

	locker, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = locker.Rollback(context.Background()) }()
	_, err = locker.Exec(ctx, `LOCK TABLE public.event_bus IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	publication := testenv.UniqueName(t, "pub")
	r := New(Options{
		DatabaseURL: dbURL,
		Source:      cdc.Options{Slot: testenv.UniqueName(t, "slot"), Publication: publication},
		Log:         testenv.Logger(t),
	}, pool, outbox.NewStore(pool), pub)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer stopRun(t, stop, done)

	var terminated bool
	eventually(t, 30*time.Second, "the publication's creation waits for the lock, and is terminated", func() bool {
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE PUBLICATION%'`).Scan(&terminated))
		return terminated
	})
	require.NoError(t, locker.Rollback(ctx))

	notDone := func(what string, cond func() bool) func() bool {
		return func() bool {
			select {
			case err := <-done:
				done <- nil // for the deferred stop
				t.Fatalf("Run returned before %s: %v", what, err)
			default:
			}
			return cond()
		}
	}
	eventually(t, 30*time.Second, "relay ready", notDone("streaming", r.Ready))
	var id string
	require.NoError(t, pool.QueryRow(ctx, `SELECT public.publish_event('test.created', 'test', 'a')::text`).Scan(&id))
	eventually(t, 30*time.Second, "the event processed", notDone("the event was processed", func() bool {
		var status string
		require.NoError(t, pool.QueryRow(ctx, `SELECT status FROM public.event_bus WHERE id = $1`, id).Scan(&status))
		return status == "processed"
	}))
	assert.Equal(t, []string{id}, streamIDs(t, natsURL, stream, 1))
}

// A backlog of single-row transactions reaches the dispatcher far above
// the busy rate: it holds what it receives to publish it together (see
// coalescer), and every event still arrives once, in commit order, marked.
func TestRunHoldsABacklogOfSmallTransactionsAndLosesNothing(t *testing.T) {
	ctx := t.Context()
	pool := testdb.MigratedPool(t)
	dbURL := pool.Config().ConnString()
	natsURL, stream, pub := connectPublisher(t)
	opts := Options{
		DatabaseURL:   dbURL,
		Source:        cdc.Options{Slot: testenv.UniqueName(t, "slot"), Publication: testenv.UniqueName(t, "pub")},
		PublishLinger: time.Millisecond,
		Log:           testenv.Logger(t),
	}
	var reg *prometheus.Registry // the last run's
	run := func() (context.CancelFunc, chan error) {
		reg = prometheus.NewRegistry()
		opts.Metrics = metrics.NewRelay(reg)
		r := New(opts, pool, outbox.NewStore(pool), pub)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		eventually(t, 30*time.Second, "relay ready", r.Ready)
		return stop, done
	}
	// The first run creates the slot; the transactions committed while no
	// relay runs wait in it.
	stop, done := run()
	stopRun(t, stop, done)
	const n = 2000
	_, err := pool.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN
		FOR i IN 1..%d LOOP
			PERFORM public.publish_event('test.created', 'test', i::text);
			COMMIT;
		END LOOP;
	END $$`, n))
	require.NoError(t, err)
	rows, err := pool.Query(ctx, `SELECT id::text FROM public.event_bus ORDER BY aggregate_id::int`)
	require.NoError(t, err)
	want, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, want, n)

	stop, done = run()
	defer stopRun(t, stop, done)
	eventually(t, 60*time.Second, "every event processed", func() bool {
		var pending int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM public.event_bus WHERE status <> 'processed'`).Scan(&pending))
		return pending == 0
	})
	assert.Equal(t, want, streamIDs(t, natsURL, stream, n), "the stream holds every event once, in commit order")
	assert.Positive(t, counterValue(t, reg, "eventbus_publish_holds_total"), "the dispatcher held changes")
}

// connectPublisher connects a publisher to a stream of the test's own on
// the test NATS server and returns the server's URL and the stream's name
// with it.
func connectPublisher(t *testing.T) (natsURL, stream string, pub *publisher.Publisher) {
	t.Helper()
	natsURL = testenv.NATSURL(t)
	stream = "RELAY_" + testenv.UniqueName(t, "s")
	pub, err := publisher.Connect(t.Context(), publisher.Options{URL: natsURL, Stream: stream, SubjectPrefix: testenv.UniqueName(t, "ev")})
	require.NoError(t, err)
	t.Cleanup(pub.Close)
	return natsURL, stream, pub
}

// counterValue reads the counter name from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// writers is a burst of events inserted through publish_event by concurrent
// goroutines, each on a connection of its own, one transaction per event.
//
// Every event has an aggregate_id unique to it. When an insert fails (the
// server restarting under the writer), the writer reconnects and first looks
// the aggregate_id up: the failed attempt may have committed before the
// connection broke. So each event is stored exactly once and its id is known,
// whatever happens to the server.
type writers struct {
	e       *env
	total   int
	wg      sync.WaitGroup
	written atomic.Int64 // events known to be committed
	retries atomic.Int64 // failed attempts, each followed by a reconnect

	mu      sync.Mutex
	ids     []string
	errs    []error
	elapsed time.Duration
}

var burstSeq atomic.Int64

// startWriters starts n writers that publish perWriter events each, of type
// burst.created. It returns at once; wait collects the ids.
func (e *env) startWriters(ctx context.Context, n, perWriter int) *writers {
	e.t.Helper()
	w := &writers{e: e, total: n * perWriter}
	burst := burstSeq.Add(1)
	started := time.Now()
	var running sync.WaitGroup
	for i := range n {
		running.Add(1)
		w.wg.Go(func() {
			defer running.Done()
			ids, err := w.write(ctx, fmt.Sprintf("b%d-w%d", burst, i), perWriter)
			w.mu.Lock()
			defer w.mu.Unlock()
			w.ids = append(w.ids, ids...)
			if err != nil {
				w.errs = append(w.errs, fmt.Errorf("writer %d: %w", i, err))
			}
		})
	}
	w.wg.Go(func() {
		running.Wait()
		w.mu.Lock()
		w.elapsed = time.Since(started)
		w.mu.Unlock()
	})
	return w
}

// retryFor bounds how long a writer keeps retrying one event.
const retryFor = 60 * time.Second

const publishBurstSQL = `SELECT public.publish_event('burst.created', 'burst', $1,
	jsonb_build_object('writer', $2::text, 'seq', $3::int), '{"source":"e2e"}'::jsonb, NULL)::text`

func (w *writers) write(ctx context.Context, name string, count int) ([]string, error) {
	ids := make([]string, 0, count)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	for seq := range count {
		aggregateID := fmt.Sprintf("%s-%d", name, seq)
		deadline := time.Now().Add(retryFor)
		for {
			id, err := w.insert(ctx, &conn, aggregateID, name, seq)
			if err == nil {
				ids = append(ids, id)
				w.written.Add(1)
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return ids, fmt.Errorf("event %s: %w", aggregateID, err)
			}
			w.retries.Add(1)
			if conn != nil {
				_ = conn.Close(context.Background())
				conn = nil
			}
			// The server is away: give it a moment before reconnecting.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return ids, ctx.Err()
			}
		}
	}
	return ids, nil
}

// insert publishes one event, or returns the id of the event a failed earlier
// attempt committed.
func (w *writers) insert(ctx context.Context, conn **pgx.Conn, aggregateID, name string, seq int) (string, error) {
	var id string
	if *conn == nil {
		c, err := pgx.Connect(ctx, w.e.dbURL)
		if err != nil {
			return "", err
		}
		*conn = c
		// Reconnected: the previous attempt may have committed.
		err = c.QueryRow(ctx, `SELECT id::text FROM public.event_bus WHERE aggregate_id = $1`, aggregateID).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", err
		}
	}
	err := (*conn).QueryRow(ctx, publishBurstSQL, aggregateID, name, seq).Scan(&id)
	return id, err
}

// wait waits for every writer to finish, requires that all of them wrote all
// their events, and returns the ids, in no particular order.
func (w *writers) wait() []string {
	t := w.e.t
	t.Helper()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	require.NoError(t, errors.Join(w.errs...), "writers")
	require.Len(t, w.ids, w.total, "events written")
	t.Logf("burst: %d events in %s (%.0f events/s), %d failed attempts retried",
		w.total, w.elapsed.Round(time.Millisecond), float64(w.total)/w.elapsed.Seconds(), w.retries.Load())
	return w.ids
}

// requireDeliveredOnce requires that event_bus holds exactly the events ids,
// waits until all of them are processed, then requires that the stream holds
// each of them exactly once and nothing else.
func (e *env) requireDeliveredOnce(ids []string, timeout time.Duration) {
	e.t.Helper()
	var rows int
	require.NoError(e.t, e.db.QueryRow(e.t.Context(), `SELECT count(*) FROM public.event_bus`).Scan(&rows))
	require.Equal(e.t, len(ids), rows, "rows in event_bus == events written")
	e.waitProcessed(rows, timeout)
	c := e.statusCounts()
	require.Equal(e.t, map[string]int{"processed": rows}, c, "every row processed, none failed")

	msgs := e.streamMessages()
	seen := make(map[string]int, len(msgs))
	copies := make(map[string][]string)
	for _, m := range msgs {
		require.Equal(e.t, m.Body.ID, m.Header.Get("Nats-Msg-Id"), "Nats-Msg-Id is the event id")
		seen[m.Body.ID]++
		copies[m.Body.ID] = append(copies[m.Body.ID], fmt.Sprintf("seq %d stored %s", m.Seq, m.Stored.Format("15:04:05.000")))
	}
	for id, n := range seen {
		require.Equal(e.t, 1, n, "event %s is in the stream %d times: %s", id, n, strings.Join(copies[id], ", "))
	}
	missing := 0
	for _, id := range ids {
		if seen[id] == 0 {
			missing++
		}
	}
	require.Zero(e.t, missing, "events written but not in the stream")
	require.Len(e.t, msgs, len(ids), "stream messages == events written")
}

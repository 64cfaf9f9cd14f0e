package schedule

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
	"github.com/eventbus/eventbus/internal/testenv/testdb"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestAddListRemove(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	st := NewStore(pool)
	ctx := t.Context()
	id, err := st.Add(ctx, Schedule{Name: "nightly", Cron: "0 3 * * *", Timezone: "Europe/Berlin", EventType: "report.due",
		AggregateType: "report", AggregateID: "r1", Payload: rawJSON(`{"kind": "daily"}`), Enabled: true})
	require.NoError(t, err)
	require.NotEmpty(t, id)
	_, err = st.Add(ctx, Schedule{Name: "nightly", Cron: "* * * * *", EventType: "x.y", AggregateType: "x", AggregateID: "1", Enabled: true})
	assert.ErrorIs(t, err, ErrExists)
	_, err = st.Add(ctx, Schedule{Name: "bad", Cron: "* * *", EventType: "x.y", AggregateType: "x", AggregateID: "1"})
	assert.ErrorContains(t, err, "want 5 fields")

	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	list, err := st.List(ctx, now)
	require.NoError(t, err)
	require.Len(t, list, 1)
	s := list[0]
	assert.Equal(t, "nightly", s.Name)
	assert.Equal(t, "Europe/Berlin", s.Timezone)
	require.NotNil(t, s.LastRunAt, "last_run_at starts at the creation")
	require.NotNil(t, s.NextRunAt)
	assert.Equal(t, time.Date(2026, 7, 2, 1, 0, 0, 0, time.UTC), *s.NextRunAt, "03:00 CEST")
	b, err := json.Marshal(s)
	require.NoError(t, err)
	assert.JSONEq(t, `{"kind": "daily"}`, string(mustField(t, b, "payload")))

	ok, err := st.Remove(ctx, "nightly")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = st.Remove(ctx, "nightly")
	require.NoError(t, err)
	assert.False(t, ok)
}

func mustField(t *testing.T, b []byte, key string) json.RawMessage {
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	return m[key]
}

// Fire is the tick's idempotency key: however many fire a tick at once,
// one event is published, with the schedule's name and the tick merged into
// its metadata.
func TestFirePublishesATickOnce(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	st := NewStore(pool)
	ctx := t.Context()
	id, err := st.Add(ctx, Schedule{Name: "every-minute", Cron: "* * * * *", EventType: "tick.minute",
		AggregateType: "clock", AggregateID: "c1", Metadata: rawJSON(`{"source": "test", "schedule": "forged"}`), Enabled: true})
	require.NoError(t, err)
	tick := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	_, err = pool.Exec(ctx, `UPDATE public.event_schedules SET last_run_at = $1 WHERE id = $2`, tick.Add(-time.Minute), id)
	require.NoError(t, err)
	if time.Until(tick) > 5*time.Second {
		tick = tick.Add(-time.Minute) // not due: fire the previous minute
		_, err = pool.Exec(ctx, `UPDATE public.event_schedules SET last_run_at = $1 WHERE id = $2`, tick.Add(-time.Minute), id)
		require.NoError(t, err)
	}

	var wg sync.WaitGroup
	results := make([]Fired, 8)
	for i := range results {
		wg.Go(func() {
			f, err := st.Fire(ctx, id, tick)
			assert.NoError(t, err)
			results[i] = f
		})
	}
	wg.Wait()
	fired := 0
	for _, f := range results {
		if f.Fired {
			fired++
			assert.Empty(t, f.Refused)
			assert.NotEmpty(t, f.EventID)
		}
	}
	assert.Equal(t, 1, fired, "one of them fired the tick")

	var n int
	var meta string
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), min(metadata::text) FROM public.event_bus WHERE event_type = 'tick.minute'`).Scan(&n, &meta))
	assert.Equal(t, 1, n)
	assert.JSONEq(t, `{"source": "test", "schedule": "every-minute", "scheduled_for": "`+tick.Format(time.RFC3339)+`"}`, meta)

	f, err := st.Fire(ctx, id, tick.Add(-time.Minute))
	require.NoError(t, err)
	assert.False(t, f.Fired, "an earlier tick than the last is not fired")
	_, err = st.Fire(ctx, id, time.Now().Add(time.Hour))
	assert.ErrorContains(t, err, "is not due")
}

func TestFireRefusesWhatPublishEventWouldRefuse(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	st := NewStore(pool)
	ctx := t.Context()
	for name, et := range map[string]string{"reserved": "lead.created", "invalid": "bad type"} {
		_, err := st.Add(ctx, Schedule{Name: name, Cron: "* * * * *", EventType: et, AggregateType: "x", AggregateID: "1", Enabled: true})
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `UPDATE public.event_schedules SET last_run_at = NULL`)
	require.NoError(t, err)
	list, err := st.enabled(ctx)
	require.NoError(t, err)
	for _, s := range list {
		f, err := st.Fire(ctx, s.ID, time.Now())
		require.NoError(t, err)
		assert.True(t, f.Fired, s.Name)
		assert.Empty(t, f.EventID, s.Name)
		assert.NotEmpty(t, f.Refused, s.Name)
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM public.event_bus`).Scan(&n))
	assert.Zero(t, n)
}

// A schedule never run (last_run_at NULL) fires its latest tick at once;
// the runner then waits for the next.
func TestRunnerFiresADueTickOnce(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	st := NewStore(pool)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := st.Add(ctx, Schedule{Name: "hourly", Cron: "0 * * * *", EventType: "tick.hour", AggregateType: "clock", AggregateID: "c", Enabled: true})
	require.NoError(t, err)
	_, err = st.Add(ctx, Schedule{Name: "broken", Cron: "* * * * *", EventType: "x.y", AggregateType: "x", AggregateID: "1", Enabled: true})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE public.event_schedules SET last_run_at = NULL WHERE name = 'hourly';
		UPDATE public.event_schedules SET cron = 'nonsense' WHERE name = 'broken'`)
	require.NoError(t, err)

	r := &Runner{Store: st, Poll: 20 * time.Millisecond, Log: testenv.Logger(t)}
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM public.event_bus WHERE event_type = 'tick.hour'`).Scan(&n))
		return n == 1, "the hour's tick"
	})
	// Several polls later, still one.
	time.Sleep(200 * time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	var n int
	var scheduledFor string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*), min(metadata->>'scheduled_for') FROM public.event_bus`).Scan(&n, &scheduledFor))
	assert.Equal(t, 1, n)
	assert.Equal(t, time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339), scheduledFor)
}

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// publishDelayed publishes an event whose metadata.deliver_at is at.
func (e *env) publishDelayed(ctx context.Context, eventType, deliverAt string) string {
	e.t.Helper()
	var id string
	require.NoError(e.t, e.db.QueryRow(ctx,
		`SELECT public.publish_event($1, 'test', 'a1', '{}'::jsonb, jsonb_build_object('deliver_at', $2::text), NULL)::text`,
		eventType, deliverAt).Scan(&id))
	return id
}

// stored is when the stream stored each message, by event id (every copy).
func (e *env) stored() map[string][]time.Time {
	e.t.Helper()
	at := map[string][]time.Time{}
	e.eachStreamMessage(func(m jetstream.Msg) {
		md, err := m.Metadata()
		require.NoError(e.t, err)
		id := m.Headers().Get("Nats-Msg-Id")
		at[id] = append(at[id], md.Timestamp)
	})
	return at
}

func (e *env) eventStatus(id string) (status, errorMessage string) {
	e.t.Helper()
	var msg *string
	require.NoError(e.t, e.db.QueryRow(e.t.Context(), `SELECT status, error_message FROM public.event_bus WHERE id = $1`, id).Scan(&status, &msg))
	if msg != nil {
		errorMessage = *msg
	}
	return status, errorMessage
}

// A delayed event stays pending until its deliver_at and reaches the stream
// then, within a second; a past deliver_at is published now; a deliver_at
// that is not a time fails the event at once, and the others go on.
func TestDelayedEventIsPublishedAtItsTime(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()
	e.waitSlotActive(true)
	e.warmUp()

	deliverAt := time.Now().Add(3 * time.Second).UTC().Truncate(time.Millisecond)
	delayed := e.publishDelayed(ctx, "delayed.later", deliverAt.Format(time.RFC3339Nano))
	past := e.publishDelayed(ctx, "delayed.past", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	bad := e.publishDelayed(ctx, "delayed.bad", "next tuesday")
	plain := e.publish(ctx, "delayed.none", "a2", `{}`)

	eventually(t, 30*time.Second, func() (bool, string) {
		sp, _ := e.eventStatus(past)
		sn, _ := e.eventStatus(plain)
		sb, _ := e.eventStatus(bad)
		return sp == "processed" && sn == "processed" && sb == "failed", "past " + sp + ", plain " + sn + ", bad " + sb
	})
	_, msg := e.eventStatus(bad)
	assert.Equal(t, `metadata.deliver_at "next tuesday" is not an RFC 3339 time with an offset (e.g. "2026-12-01T20:00:00Z")`, msg)
	var retries int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT retry_count FROM public.event_bus WHERE id = $1`, bad).Scan(&retries))
	assert.Equal(t, 1, retries, "failed at once, not retried")
	if time.Now().Before(deliverAt) {
		st, _ := e.eventStatus(delayed)
		assert.Equal(t, "pending", st, "the delayed event waits")
	}

	eventually(t, 30*time.Second, func() (bool, string) {
		st, _ := e.eventStatus(delayed)
		return st == "processed", "delayed event " + st
	})
	at := e.stored()
	require.Len(t, at[delayed], 1, "published once")
	assert.False(t, at[delayed][0].Before(deliverAt), "stored %s, not before deliver_at %s", at[delayed][0], deliverAt)
	assert.LessOrEqual(t, at[delayed][0].Sub(deliverAt), 1500*time.Millisecond, "stored %s, deliver_at %s", at[delayed][0], deliverAt)
	t.Logf("delayed event stored %s after its deliver_at", at[delayed][0].Sub(deliverAt))
	assert.Len(t, at[past], 1)
	assert.Len(t, at[plain], 1)
	assert.Empty(t, at[bad], "not published")
}

// The slot moves past a delayed event's insert; the row is its record. The
// active relay is killed (SIGKILL) before the event is due, and the hot
// standby that takes over publishes it at its time, once.
func TestDelayedEventSurvivesAKilledRelayAndATakeover(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	active := e.startRelay()
	e.waitSlotActive(true)
	e.warmUp()
	standby := e.startRelay()
	eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(standby.out.String(), `msg="standby:`), "the second relay is a standby"
	})

	deliverAt := time.Now().Add(6 * time.Second).UTC().Truncate(time.Millisecond)
	id := e.publishDelayed(ctx, "delayed.takeover", deliverAt.Format(time.RFC3339Nano))
	// The active relay has read the insert (and skipped it): the slot is
	// confirmed past it.
	var lsn string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn))
	eventually(t, 30*time.Second, func() (bool, string) {
		var past bool
		require.NoError(t, e.db.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn >= $2::pg_lsn, false)
			FROM pg_replication_slots WHERE slot_name = $1`, e.slot, lsn).Scan(&past))
		return past, "slot confirmed past the delayed event's insert"
	})
	st, _ := e.eventStatus(id)
	require.Equal(t, "pending", st)
	require.True(t, time.Now().Before(deliverAt), "the test was too slow to kill the relay before the event was due")
	active.kill()

	e.waitSlotActive(true)
	tookOver := time.Now()
	eventually(t, 30*time.Second, func() (bool, string) {
		st, _ := e.eventStatus(id)
		return st == "processed", "delayed event " + st
	})
	at := e.stored()
	require.Len(t, at[id], 1, "published once")
	assert.False(t, at[id][0].Before(deliverAt), "stored %s, not before deliver_at %s", at[id][0], deliverAt)
	if tookOver.Before(deliverAt.Add(-500 * time.Millisecond)) {
		assert.LessOrEqual(t, at[id][0].Sub(deliverAt), 1500*time.Millisecond, "stored %s, deliver_at %s", at[id][0], deliverAt)
	}
	t.Logf("standby streaming %s before deliver_at; stored %s after it", deliverAt.Sub(tookOver), at[id][0].Sub(deliverAt))
	standby.requireRunning()
}

type scheduledEvent struct {
	ID           string
	ScheduledFor string
	Schedule     string
}

func (e *env) scheduledEvents(eventType string) []scheduledEvent {
	e.t.Helper()
	rows, err := e.db.Query(e.t.Context(), `SELECT id::text, metadata->>'scheduled_for', metadata->>'schedule'
		FROM public.event_bus WHERE event_type = $1 ORDER BY created_at`, eventType)
	require.NoError(e.t, err)
	defer rows.Close()
	var list []scheduledEvent
	for rows.Next() {
		var s scheduledEvent
		require.NoError(e.t, rows.Scan(&s.ID, &s.ScheduledFor, &s.Schedule))
		list = append(list, s)
	}
	require.NoError(e.t, rows.Err())
	return list
}

// A per-minute schedule with an active relay and a hot standby: each tick
// is published once, by the active relay, with the schedule's name and the
// tick in its metadata, within a second of the minute.
func TestScheduleFiresOncePerTickWithTwoRelays(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	active := e.startRelay()
	e.waitSlotActive(true)
	standby := e.startRelay()
	eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(standby.out.String(), `msg="standby:`), "the second relay is a standby"
	})

	r := runCLI(t, e.bin, e.environ(), "schedule", "add", "--name", "every-minute", "--cron", "* * * * *",
		"--event-type", "clock.minute", "--aggregate-type", "clock", "--aggregate-id", "c1",
		"--payload", `{"n": 1}`, "--metadata", `{"source": "e2e"}`)
	require.Equal(t, 0, r.code, "%s", r)
	// Never run: the latest tick (this minute's) is due at once.
	_, err := e.db.Exec(ctx, `UPDATE public.event_schedules SET last_run_at = NULL WHERE name = 'every-minute'`)
	require.NoError(t, err)
	first := time.Now().UTC().Truncate(time.Minute)

	eventually(t, 30*time.Second, func() (bool, string) {
		return len(e.scheduledEvents("clock.minute")) >= 1, "the missed tick fired"
	})
	second := first.Add(time.Minute)
	// One real minute boundary.
	eventually(t, 75*time.Second, func() (bool, string) {
		n := len(e.scheduledEvents("clock.minute"))
		return n >= 2, "the next minute's tick"
	})
	e.waitProcessed(2, 30*time.Second)
	// A few polls of both relays later, still one event per tick.
	time.Sleep(2 * time.Second)
	events := e.scheduledEvents("clock.minute")
	require.Len(t, events, 2, "one event per tick")
	ticks := []string{events[0].ScheduledFor, events[1].ScheduledFor}
	if first.Before(time.Now().UTC().Truncate(time.Minute).Add(-time.Minute)) {
		t.Logf("a slow start: ticks %v", ticks) // the first fire may already be the next minute
	} else {
		assert.Equal(t, []string{first.Format(time.RFC3339), second.Format(time.RFC3339)}, ticks)
	}
	for _, ev := range events {
		assert.Equal(t, "every-minute", ev.Schedule)
	}
	var meta string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT metadata::text FROM public.event_bus WHERE id = $1`, events[1].ID).Scan(&meta))
	assert.JSONEq(t, `{"source": "e2e", "schedule": "every-minute", "scheduled_for": "`+events[1].ScheduledFor+`"}`, meta)

	at := e.stored()
	tick, err := time.Parse(time.RFC3339, events[1].ScheduledFor)
	require.NoError(t, err)
	require.Len(t, at[events[1].ID], 1)
	assert.False(t, at[events[1].ID][0].Before(tick))
	assert.LessOrEqual(t, at[events[1].ID][0].Sub(tick), 1500*time.Millisecond, "the minute's event reached the stream %s after the minute", at[events[1].ID][0].Sub(tick))
	assert.Equal(t, 2, strings.Count(active.out.String(), `msg="schedule fired"`), "the active relay fired both ticks")
	assert.NotContains(t, standby.out.String(), `msg="schedule fired"`, "the standby never fires")
}

// Ticks missed while no relay ran: the latest is published once when a
// relay starts, not one per missed tick.
func TestMissedTicksArePublishedOnceOnStart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	r := runCLI(t, e.bin, e.environ(), "schedule", "add", "--name", "hourly", "--cron", "0 * * * *",
		"--event-type", "clock.hour", "--aggregate-type", "clock", "--aggregate-id", "c1")
	require.Equal(t, 0, r.code, "%s", r)
	_, err := e.db.Exec(ctx, `UPDATE public.event_schedules SET last_run_at = now() - interval '5 hours' WHERE name = 'hourly'`)
	require.NoError(t, err)
	latest := time.Now().UTC().Truncate(time.Hour)

	relay := e.startRelay()
	e.waitSlotActive(true)
	e.waitProcessed(1, 30*time.Second)
	time.Sleep(2 * time.Second) // a few of the runner's polls
	require.Equal(t, 0, relay.stop())
	events := e.scheduledEvents("clock.hour")
	require.Len(t, events, 1, "five missed ticks, published once")
	if now := time.Now().UTC().Truncate(time.Hour); now.Equal(latest) {
		assert.Equal(t, latest.Format(time.RFC3339), events[0].ScheduledFor, "the latest missed tick")
	}
	var last time.Time
	require.NoError(t, e.db.QueryRow(ctx, `SELECT last_run_at FROM public.event_schedules WHERE name = 'hourly'`).Scan(&last))
	assert.Equal(t, events[0].ScheduledFor, last.UTC().Format(time.RFC3339))
}

func TestScheduleCLI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	env := e.environ()
	add := func(extra ...string) cliResult {
		return runCLI(t, e.bin, env, append([]string{"schedule", "add", "--event-type", "report.due",
			"--aggregate-type", "report", "--aggregate-id", "r1"}, extra...)...)
	}
	r := add("--name", "nightly", "--cron", "0 3 * * *", "--timezone", "Europe/Berlin", "--payload", `{"kind": "daily"}`)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Regexp(t, `^[0-9a-f-]{36}\n$`, r.stdout)

	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--name", "x", "--cron", "* * *"}, `cron "* * *": want 5 fields`},
		{[]string{"--name", "x", "--cron", "61 * * * *"}, `cron "61 * * * *"`},
		{[]string{"--name", "x", "--cron", "* * * * *", "--timezone", "Mars/Olympus"}, `time zone "Mars/Olympus" is not an IANA time zone`},
		{[]string{"--name", "x", "--cron", "* * * * *", "--payload", "[1]"}, `--payload is not a JSON object`},
		{[]string{"--name", "nightly", "--cron", "* * * * *"}, `a schedule named "nightly" exists already`},
		{[]string{"--cron", "* * * * *"}, `--name is required`},
	} {
		r := add(c.args...)
		assert.Equal(t, 2, r.code, "%v: %s", c.args, r)
		assert.Contains(t, r.stderr, c.says, c.args)
		assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
	}

	r = runCLI(t, e.bin, env, "schedule", "list")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "nightly")
	assert.Contains(t, r.stdout, "Europe/Berlin")

	r = runCLI(t, e.bin, env, "schedule", "list", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	var list []struct {
		Name      string          `json:"name"`
		Cron      string          `json:"cron"`
		Timezone  string          `json:"timezone"`
		Payload   json.RawMessage `json:"payload"`
		NextRunAt *time.Time      `json:"next_run_at"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list), r.stdout)
	require.Len(t, list, 1)
	assert.Equal(t, "0 3 * * *", list[0].Cron)
	assert.JSONEq(t, `{"kind": "daily"}`, string(list[0].Payload))
	require.NotNil(t, list[0].NextRunAt)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	next := list[0].NextRunAt.In(berlin)
	assert.Equal(t, []int{3, 0}, []int{next.Hour(), next.Minute()}, "03:00 Berlin time: %s", next)
	assert.WithinDuration(t, time.Now().Add(12*time.Hour), next, 13*time.Hour)

	r = runCLI(t, e.bin, env, "schedule", "remove", "nightly")
	require.Equal(t, 0, r.code, "%s", r)
	r = runCLI(t, e.bin, env, "schedule", "remove", "nightly")
	assert.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stderr, `no schedule named "nightly"`)
	r = runCLI(t, e.bin, env, "schedule", "frobnicate")
	assert.Equal(t, 2, r.code, "%s", r)
}

// The least-privilege relay role releases delayed events and fires
// schedules with its grants alone (SELECT on event_schedules and EXECUTE on
// eventbus_fire_schedule; no publish_event).
func TestScheduledEventsAsLeastPrivilegeRole(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	_, roleURL := e.relayRole()
	p := e.startRelayEnv("EVENTBUS_DATABASE_URL=" + roleURL)
	e.waitSlotActive(true)

	deliverAt := time.Now().Add(2 * time.Second).UTC()
	delayed := e.publishDelayed(ctx, "delayed.role", deliverAt.Format(time.RFC3339Nano))
	r := runCLI(t, e.bin, e.environ(), "schedule", "add", "--name", "role-hourly", "--cron", "0 * * * *",
		"--event-type", "clock.hour", "--aggregate-type", "clock", "--aggregate-id", "c1")
	require.Equal(t, 0, r.code, "%s", r)
	_, err := e.db.Exec(ctx, `UPDATE public.event_schedules SET last_run_at = NULL`)
	require.NoError(t, err)

	eventually(t, 30*time.Second, func() (bool, string) {
		st, _ := e.eventStatus(delayed)
		return st == "processed" && len(e.scheduledEvents("clock.hour")) == 1, "delayed event " + st + " and the schedule's tick"
	})
	e.waitProcessed(2, 30*time.Second)
	at := e.stored()
	require.Len(t, at[delayed], 1)
	assert.False(t, at[delayed][0].Before(deliverAt))
	assert.NotContains(t, p.out.String(), "permission denied")
}

// A relay killed (SIGKILL) with a delayed event waiting, and started again
// only after the event was due: the event is published once, at the start.
func TestDelayedEventDueWhileNoRelayRanIsPublishedOnceOnStart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	p := e.startRelay()
	e.waitSlotActive(true)
	e.warmUp()
	deliverAt := time.Now().Add(2 * time.Second).UTC()
	id := e.publishDelayed(ctx, "delayed.restart", deliverAt.Format(time.RFC3339Nano))
	p.kill()
	eventually(t, 30*time.Second, func() (bool, string) {
		return time.Now().After(deliverAt.Add(500 * time.Millisecond)), "the event is due"
	})
	st, _ := e.eventStatus(id)
	require.Equal(t, "pending", st, "nothing published it while no relay ran")

	e.startRelay()
	eventually(t, 30*time.Second, func() (bool, string) {
		st, _ := e.eventStatus(id)
		return st == "processed", "delayed event " + st
	})
	at := e.stored()
	require.Len(t, at[id], 1, "published once")
	assert.False(t, at[id][0].Before(deliverAt))
}

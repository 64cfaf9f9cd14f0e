package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventRow is the delivery state of one event_bus row.
type eventRow struct {
	Status       string
	RetryCount   int
	ErrorMessage *string
	ProcessedAt  *time.Time
}

func (e *env) eventRow(ctx context.Context, id string) eventRow {
	e.t.Helper()
	var r eventRow
	require.NoError(e.t, e.db.QueryRow(ctx, `SELECT status, retry_count, error_message, processed_at FROM public.event_bus WHERE id = $1`, id).
		Scan(&r.Status, &r.RetryCount, &r.ErrorMessage, &r.ProcessedAt))
	return r
}

// waitStatuses waits until the rows by status are exactly want.
func (e *env) waitStatuses(want map[string]int, timeout time.Duration) {
	e.t.Helper()
	eventually(e.t, timeout, func() (bool, string) {
		got := e.statusCounts()
		return assert.ObjectsAreEqual(want, got), fmt.Sprintf("statuses %v, want %v", got, want)
	})
}

// requireFailed requires that event id failed after maxRetries attempts with
// an error message that names reason.
func (e *env) requireFailed(ctx context.Context, id string, maxRetries int, reason string) {
	e.t.Helper()
	r := e.eventRow(ctx, id)
	assert.Equal(e.t, "failed", r.Status)
	assert.Equal(e.t, maxRetries, r.RetryCount, "retry_count")
	assert.Nil(e.t, r.ProcessedAt, "a failed event has no processed_at")
	if assert.NotNil(e.t, r.ErrorMessage, "error_message") {
		e.t.Logf("error_message of %s: %s", id, *r.ErrorMessage)
		assert.Contains(e.t, *r.ErrorMessage, reason)
		assert.Less(e.t, len(*r.ErrorMessage), 300, "error_message is one readable line")
		assert.NotContains(e.t, *r.ErrorMessage, "\n")
	}
}

func TestBadEventsFailAfterRetriesAndTheRestFlows(t *testing.T) {
	t.Parallel()
	e := setup(t, withMaxPayload(64*1024))
	ctx := t.Context()
	e.startRelay()

	good1 := e.publish(ctx, "order.placed", "o-1", `{"n":1}`)
	badSubject := e.insertDirect(ctx, "bad type", "o-2", `{"n":2}`, "pending") // publish_event refuses it
	good2 := e.publish(ctx, "order.placed", "o-3", `{"n":3}`)
	var tooLarge string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT public.publish_event('order.placed', 'test', 'o-4',
		jsonb_build_object('blob', repeat('x', 100000)), '{}'::jsonb, NULL)::text`).Scan(&tooLarge))
	good3 := e.publish(ctx, "order.placed", "o-5", `{"n":5}`)

	e.waitStatuses(map[string]int{"processed": 3, "failed": 2}, 90*time.Second)
	e.requireFailed(ctx, badSubject, 5, "subject")
	e.requireFailed(ctx, tooLarge, 5, "max_payload")
	for _, id := range []string{good1, good2, good3} {
		r := e.eventRow(ctx, id)
		assert.Equal(t, "processed", r.Status, "event %s", id)
		assert.Zero(t, r.RetryCount, "event %s", id)
		assert.Nil(t, r.ErrorMessage, "event %s", id)
	}

	msgs := e.streamMessages()
	var got []string
	for _, m := range msgs {
		got = append(got, m.Body.ID)
	}
	require.Equal(t, []string{good1, good2, good3}, got, "the good events, in order; the bad ones are not in the stream")
}

func TestBadEventHonoursMaxRetries(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_MAX_RETRIES=2"))
	ctx := t.Context()
	e.startRelay()

	bad := e.insertDirect(ctx, "bad type", "b-1", `{}`, "pending") // publish_event refuses it
	good := e.publish(ctx, "order.placed", "b-2", `{}`)
	e.waitStatuses(map[string]int{"processed": 1, "failed": 1}, 60*time.Second)
	e.requireFailed(ctx, bad, 2, "subject")
	assert.Equal(t, "processed", e.eventRow(ctx, good).Status)

	msgs := e.streamMessages()
	require.Len(t, msgs, 1)
	assert.Equal(t, good, msgs[0].Body.ID)
}

// SIGTERM while the relay backs off between attempts of a rejected event is
// a graceful stop like any other: exit 0, what was published is marked, the
// rejected event keeps its count (not failed early), and the next run
// resumes the attempts (before: the stop during the backoff ended the
// session as a failure and skipped the drain).
func TestSIGTERMDuringARejectionBackoffDrains(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_MAX_RETRIES=8"))
	ctx := t.Context()
	relay := e.startRelay()

	before := e.publish(ctx, "order.placed", "o-1", `{"n":1}`)
	bad := e.insertDirect(ctx, "bad type", "o-2", `{"n":2}`, "pending")
	after := e.publish(ctx, "order.placed", "o-3", `{"n":3}`)
	eventually(t, 60*time.Second, func() (bool, string) {
		r := e.eventRow(ctx, bad)
		return r.RetryCount >= 3, fmt.Sprintf("rejected event: %d attempts", r.RetryCount)
	})
	require.Zero(t, relay.stop(), "exit code of SIGTERM during the backoff")
	out := relay.out.String()
	assert.NotContains(t, out, "relay session ended", "the stop is not a session failure")
	assert.Contains(t, out, `msg=stopped`, "the session drained and stopped")
	assert.Equal(t, "processed", e.eventRow(ctx, before).Status, "the event before the rejected one")
	r := e.eventRow(ctx, bad)
	assert.Equal(t, "pending", r.Status, "the rejected event is not failed by a stop")
	assert.Less(t, r.RetryCount, 8)

	e.startRelay()
	e.waitStatuses(map[string]int{"processed": 2, "failed": 1}, 90*time.Second)
	e.requireFailed(ctx, bad, 8, "subject")
	assert.Equal(t, "processed", e.eventRow(ctx, after).Status, "the event behind the rejected one")
}

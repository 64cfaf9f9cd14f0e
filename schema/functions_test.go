package schema

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// event is an event_bus row as the tests look at it.
type event struct {
	ID             string
	EventType      string
	AggregateType  string
	AggregateID    string
	Payload        map[string]any
	Metadata       map[string]any
	OrganizationID *string
	Status         string
	RetryCount     int
	ErrorMessage   *string
}

const eventColumns = `id::text, event_type, aggregate_type, aggregate_id, payload, metadata,
	organization_id::text, status, retry_count, error_message`

// eventsWhere returns the event_bus rows matching the condition, oldest first.
func eventsWhere(t *testing.T, q querier, cond string, args ...any) []event {
	t.Helper()
	rows, err := q.Query(t.Context(), `SELECT `+eventColumns+` FROM public.event_bus WHERE `+cond+` ORDER BY created_at, id`, args...)
	require.NoError(t, err)
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (event, error) {
		var e event
		err := r.Scan(&e.ID, &e.EventType, &e.AggregateType, &e.AggregateID, &e.Payload, &e.Metadata,
			&e.OrganizationID, &e.Status, &e.RetryCount, &e.ErrorMessage)
		return e, err
	})
	require.NoError(t, err)
	return events
}

func TestLeadTriggers(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	org, status1, status2, source := newUUID(t), newUUID(t), newUUID(t), newUUID(t)

	var leadID string
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO public.leads
		(first_name, last_name, phone, status_id, lead_source_id, organization_id)
		VALUES ('John', 'Doe', '+79991234567', $1, $2, $3) RETURNING id::text`,
		status1, source, org).Scan(&leadID))

	created := eventsWhere(t, conn, `aggregate_id = $1`, leadID)
	require.Len(t, created, 1, "inserting a lead publishes one event")
	assert.Equal(t, "lead.created", created[0].EventType)
	assert.Equal(t, "lead", created[0].AggregateType)
	assert.Equal(t, map[string]any{
		"lead_id":         leadID,
		"first_name":      "John",
		"last_name":       "Doe",
		"phone":           "+79991234567",
		"status_id":       status1,
		"lead_source_id":  source,
		"organization_id": org,
	}, created[0].Payload)
	assert.Equal(t, map[string]any{"trigger": "insert"}, created[0].Metadata)
	require.NotNil(t, created[0].OrganizationID)
	assert.Equal(t, org, *created[0].OrganizationID)
	assert.Equal(t, "pending", created[0].Status)

	_, err := conn.Exec(ctx, `UPDATE public.leads SET status_id = $2 WHERE id = $1`, leadID, status2)
	require.NoError(t, err)
	updated := eventsWhere(t, conn, `aggregate_id = $1 AND event_type = 'lead.status_updated'`, leadID)
	require.Len(t, updated, 1, "changing status_id publishes one event")
	assert.Equal(t, "lead", updated[0].AggregateType)
	assert.Equal(t, map[string]any{
		"lead_id":         leadID,
		"first_name":      "John",
		"last_name":       "Doe",
		"old_status_id":   status1,
		"new_status_id":   status2,
		"organization_id": org,
	}, updated[0].Payload)
	assert.Equal(t, map[string]any{"trigger": "update"}, updated[0].Metadata)
	require.NotNil(t, updated[0].OrganizationID)
	assert.Equal(t, org, *updated[0].OrganizationID)

	_, err = conn.Exec(ctx, `UPDATE public.leads SET phone = '+70000000000' WHERE id = $1`, leadID)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `UPDATE public.leads SET status_id = status_id WHERE id = $1`, leadID)
	require.NoError(t, err)
	assert.Len(t, eventsWhere(t, conn, `aggregate_id = $1`, leadID), 2,
		"updates that leave status_id as it is publish nothing")

	_, err = conn.Exec(ctx, `UPDATE public.leads SET status_id = NULL WHERE id = $1`, leadID)
	require.NoError(t, err)
	cleared := eventsWhere(t, conn, `aggregate_id = $1 AND event_type = 'lead.status_updated'`, leadID)
	require.Len(t, cleared, 2, "status_id to NULL is a change")
	assert.Equal(t, status2, cleared[1].Payload["old_status_id"])
	assert.Nil(t, cleared[1].Payload["new_status_id"])
}

func TestLeadCreatedWithNulls(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	var leadID string
	require.NoError(t, conn.QueryRow(t.Context(),
		`INSERT INTO public.leads DEFAULT VALUES RETURNING id::text`).Scan(&leadID))
	events := eventsWhere(t, conn, `aggregate_id = $1`, leadID)
	require.Len(t, events, 1)
	assert.Equal(t, map[string]any{
		"lead_id":         leadID,
		"first_name":      nil,
		"last_name":       nil,
		"phone":           nil,
		"status_id":       nil,
		"lead_source_id":  nil,
		"organization_id": nil,
	}, events[0].Payload, "null columns are keys with null values")
	assert.Nil(t, events[0].OrganizationID)
}

func TestPublishEventWithoutUser(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	org := newUUID(t)

	var id string
	require.NoError(t, conn.QueryRow(ctx, `SELECT public.publish_event('payment.completed', 'payment', 'p-1',
		'{"amount": 10}', '{"source": "test"}', $1)::text`, org).Scan(&id))
	events := eventsWhere(t, conn, `id = $1`, id)
	require.Len(t, events, 1)
	e := events[0]
	assert.Equal(t, "payment.completed", e.EventType)
	assert.Equal(t, "payment", e.AggregateType)
	assert.Equal(t, "p-1", e.AggregateID)
	assert.Equal(t, map[string]any{"amount": float64(10)}, e.Payload)
	assert.Equal(t, map[string]any{"source": "test"}, e.Metadata)
	require.NotNil(t, e.OrganizationID, "without a user the organization is taken as given")
	assert.Equal(t, org, *e.OrganizationID)
	assert.Equal(t, "pending", e.Status)

	require.NoError(t, conn.QueryRow(ctx,
		`SELECT public.publish_event('x.y', 'x', '1', NULL, NULL)::text`).Scan(&id))
	events = eventsWhere(t, conn, `id = $1`, id)
	require.Len(t, events, 1)
	assert.Equal(t, map[string]any{}, events[0].Payload, "NULL payload is stored as {}")
	assert.Equal(t, map[string]any{}, events[0].Metadata, "NULL metadata is stored as {}")
	assert.Nil(t, events[0].OrganizationID)

	require.NoError(t, conn.QueryRow(ctx,
		`SELECT public.publish_event(p_event_type => 'x.y', p_aggregate_type => 'x', p_aggregate_id => '2')::text`).Scan(&id))
	events = eventsWhere(t, conn, `id = $1`, id)
	require.Len(t, events, 1, "named arguments with defaults, as supabase.rpc calls it")
	assert.Equal(t, map[string]any{}, events[0].Payload)
}

// insertEvent inserts an event_bus row directly, created age ago.
func insertEvent(t *testing.T, conn *pgx.Conn, status, age string, org *string) string {
	t.Helper()
	var id string
	require.NoError(t, conn.QueryRow(t.Context(), `INSERT INTO public.event_bus
		(event_type, aggregate_type, aggregate_id, organization_id, status, created_at, retry_count, error_message)
		VALUES ('test.event', 'test', 'a', $1, $2, now() - $3::interval,
		        CASE WHEN $2 = 'failed' THEN 5 ELSE 0 END,
		        CASE WHEN $2 = 'failed' THEN 'boom' END)
		RETURNING id::text`, org, status, age).Scan(&id))
	return id
}

func TestProcessPendingEvents(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()

	failed := insertEvent(t, conn, "failed", "1 hour", nil)
	stalePending := insertEvent(t, conn, "pending", "50 minutes", nil)
	staleProcessing := insertEvent(t, conn, "processing", "40 minutes", nil)
	processed := insertEvent(t, conn, "processed", "30 minutes", nil)
	freshPending := insertEvent(t, conn, "pending", "0 seconds", nil)
	freshProcessing := insertEvent(t, conn, "processing", "0 seconds", nil)
	freshFailed := insertEvent(t, conn, "failed", "0 seconds", nil)

	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT public.process_pending_events(2)`).Scan(&n))
	assert.Equal(t, 2, n, "at most p_limit rows")
	byID := func(id string) event {
		events := eventsWhere(t, conn, `id = $1`, id)
		require.Len(t, events, 1)
		return events[0]
	}
	assert.Equal(t, "pending", byID(failed).Status, "the oldest rows go first")
	assert.Equal(t, "processing", byID(staleProcessing).Status, "beyond p_limit: untouched")

	require.NoError(t, conn.QueryRow(ctx, `SELECT public.process_pending_events()`).Scan(&n))
	assert.Equal(t, 4, n, "stale pending (including the two handed back above, the relay has not marked them),"+
		" failed and stale processing rows are handed back; fresh pending or processing ones are not")

	for _, id := range []string{failed, stalePending, staleProcessing, freshPending, freshFailed} {
		assert.Equal(t, "pending", byID(id).Status)
	}
	assert.Equal(t, "processing", byID(freshProcessing).Status)
	assert.Equal(t, "processed", byID(processed).Status)
	f := byID(failed)
	assert.Equal(t, 5, f.RetryCount, "retry_count is kept as history")
	require.NotNil(t, f.ErrorMessage)
	assert.Equal(t, "boom", *f.ErrorMessage, "error_message is kept as history")

	require.NoError(t, conn.QueryRow(ctx, `SELECT public.process_pending_events(0)`).Scan(&n))
	assert.Zero(t, n)

	for _, bad := range []string{"-1", "NULL"} {
		_, err := conn.Exec(ctx, `SELECT public.process_pending_events(`+bad+`)`)
		require.ErrorContains(t, err, "p_limit must be zero or positive", bad)
		assert.Equal(t, "22023", pgCode(err))
	}
}

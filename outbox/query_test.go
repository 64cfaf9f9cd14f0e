package outbox

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

const (
	orgA = "aaaaaaaa-0000-4000-8000-000000000001"
	orgB = "bbbbbbbb-0000-4000-8000-000000000002"
)

// insertEvent stores an event as the table owner and returns its id; org ""
// is NULL.
func insertEvent(t *testing.T, pool *pgxpool.Pool, org, status, eventType, aggregateID string, createdAt time.Time) string {
	t.Helper()
	var orgArg any
	if org != "" {
		orgArg = org
	}
	var id string
	require.NoError(t, pool.QueryRow(t.Context(), `INSERT INTO public.event_bus
		(event_type, aggregate_type, aggregate_id, organization_id, status, created_at, payload)
		VALUES ($1, 'test', $2, $3::uuid, $4, $5, '{"n": 1}') RETURNING id::text`,
		eventType, aggregateID, orgArg, status, createdAt).Scan(&id))
	return id
}

func listIDs(t *testing.T, pool *pgxpool.Pool, f Filter) []string {
	t.Helper()
	events, err := ListEvents(t.Context(), pool, f)
	require.NoError(t, err)
	var ids []string
	for _, e := range events {
		ids = append(ids, e.ID)
	}
	return ids
}

// One filter serves the monitor's list, replay and verify: the same
// conditions select the same rows through ListEvents, Scan, ScanPositions
// and Count.
func TestFilterSelectsTheSameRowsEverywhere(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	now := time.Now()
	old := insertEvent(t, pool, orgA, event.StatusFailed, "lead.created", "lead-1", now.Add(-3*time.Hour))
	mid := insertEvent(t, pool, orgB, event.StatusPending, "lead.status_updated", "lead-2", now.Add(-2*time.Hour))
	recent := insertEvent(t, pool, orgA, event.StatusProcessed, "payment.completed", "pay-1", now.Add(-time.Hour))

	for name, c := range map[string]struct {
		f    Filter
		want []string // oldest first
	}{
		"none":             {Filter{}, []string{old, mid, recent}},
		"status":           {Filter{Statuses: []string{event.StatusFailed, event.StatusPending}}, []string{old, mid}},
		"event type":       {Filter{EventTypes: []string{"lead.status_updated"}}, []string{mid}},
		"aggregate type":   {Filter{AggregateTypes: []string{"test"}}, []string{old, mid, recent}},
		"aggregate prefix": {Filter{AggregateIDPrefix: "lead"}, []string{old, mid}},
		"organization":     {Filter{OrganizationID: orgA}, []string{old, recent}},
		"since":            {Filter{Since: now.Add(-150 * time.Minute)}, []string{mid, recent}},
		"until":            {Filter{Until: now.Add(-150 * time.Minute)}, []string{old}},
		"ids":              {Filter{IDs: []string{recent, old}}, []string{old, recent}},
		"no match":         {Filter{Statuses: []string{event.StatusPending}, OrganizationID: orgA}, nil},
	} {
		assert.Equal(t, c.want, listIDs(t, pool, c.f), "%s: ListEvents", name)
		var scanned []string
		n, err := store.Scan(t.Context(), c.f, func(e event.Event) error {
			scanned = append(scanned, e.ID)
			return nil
		})
		require.NoError(t, err, name)
		assert.Equal(t, c.want, scanned, "%s: Scan", name)
		assert.Len(t, c.want, n, name)
		var positions []string
		n, err = store.ScanPositions(t.Context(), c.f, func(p Position) error {
			assert.False(t, p.CreatedAt.IsZero(), "%s: ScanPositions reads created_at", name)
			positions = append(positions, p.ID)
			return nil
		})
		require.NoError(t, err, name)
		assert.Equal(t, c.want, positions, "%s: ScanPositions", name)
		assert.Len(t, c.want, n, name)
		count, err := store.Count(t.Context(), c.f)
		require.NoError(t, err, name)
		assert.Len(t, c.want, count, "%s: Count", name)
	}
}

// Newest first, a page at a time: Before the last event of a page is the
// next page, and every event comes once, ties on created_at broken by id.
func TestListEventsPagesNewestFirst(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 7 {
		insertEvent(t, pool, orgA, event.StatusProcessed, "lead.created", "lead", base.Add(time.Duration(i/2)*time.Second))
	}
	want := listIDs(t, pool, Filter{NewestFirst: true})
	require.Len(t, want, 7)

	var got []string
	f := Filter{NewestFirst: true, Limit: 3}
	for page := 0; page < 5; page++ {
		events, err := ListEvents(t.Context(), pool, f)
		require.NoError(t, err)
		require.LessOrEqual(t, len(events), 3)
		for _, e := range events {
			got = append(got, e.ID)
		}
		if len(events) < 3 {
			break
		}
		last := events[len(events)-1]
		f.Before = &Position{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	assert.Equal(t, want, got)
	assert.Len(t, listIDs(t, pool, Filter{Limit: 2}), 2)
}

func TestGetEventReadsTheDeliveryColumns(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	id := insertEvent(t, pool, "", event.StatusFailed, "lead.created", "lead-1", time.Now())
	_, err := pool.Exec(t.Context(), `UPDATE public.event_bus SET retry_count = 5, error_message = 'broker said no', metadata = NULL WHERE id = $1`, id)
	require.NoError(t, err)

	e, err := GetEvent(t.Context(), pool, id)
	require.NoError(t, err)
	assert.Equal(t, id, e.ID)
	assert.Equal(t, "lead.created", e.EventType)
	assert.Empty(t, e.OrganizationID)
	assert.JSONEq(t, `{"n": 1}`, string(e.Payload))
	assert.Nil(t, e.Metadata, "NULL metadata")
	assert.Equal(t, event.StatusFailed, e.Status)
	assert.Nil(t, e.ProcessedAt)
	assert.Equal(t, 5, e.RetryCount)
	require.NotNil(t, e.ErrorMessage)
	assert.Equal(t, "broker said no", *e.ErrorMessage)

	_, err = pool.Exec(t.Context(), `UPDATE public.event_bus SET status = NULL, retry_count = NULL WHERE id = $1`, id)
	require.NoError(t, err)
	e, err = GetEvent(t.Context(), pool, id)
	require.NoError(t, err)
	assert.Equal(t, event.StatusPending, e.Status, "NULL status reads as pending")
	assert.Zero(t, e.RetryCount)

	_, err = GetEvent(t.Context(), pool, "00000000-0000-4000-8000-000000000000")
	assert.ErrorIs(t, err, ErrNotFound)
}

// The seed's created_at is nullable. Newest first lists such rows before the
// dated ones, and a page that ends on one still leads to the next page: the
// cursor of a NULL row once stopped paging there, hiding every older row.
func TestListEventsPagesThroughNullCreatedAt(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 4 {
		insertEvent(t, pool, orgA, event.StatusProcessed, "lead.created", "lead", base.Add(time.Duration(i)*time.Second))
	}
	for range 3 {
		id := insertEvent(t, pool, orgA, event.StatusProcessed, "lead.created", "lead", base)
		_, err := pool.Exec(t.Context(), `UPDATE public.event_bus SET created_at = NULL WHERE id = $1`, id)
		require.NoError(t, err)
	}
	want := listIDs(t, pool, Filter{NewestFirst: true})
	require.Len(t, want, 7)

	for _, size := range []int{1, 2, 3} {
		var got []string
		f := Filter{NewestFirst: true, Limit: size}
		for page := 0; page < 10; page++ {
			events, err := ListEvents(t.Context(), pool, f)
			require.NoError(t, err)
			for _, e := range events {
				got = append(got, e.ID)
			}
			if len(events) < size {
				break
			}
			last := events[len(events)-1]
			f.Before = &Position{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		assert.Equal(t, want, got, "pages of %d", size)
	}
}

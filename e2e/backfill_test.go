package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

func TestRowsFromBeforeTheFirstRunAreDelivered(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()

	const n = 50
	ids := make([]string, 0, n)
	for i := range n {
		ids = append(ids, e.publish(ctx, "order.placed", fmt.Sprintf("order-%d", i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	var slots int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&slots))
	require.Zero(t, slots, "no slot before the first run")

	e.startRelay()
	e.requireDeliveredOnce(ids, 60*time.Second)
	require.Equal(t, n, e.streamCount())
}

// seedHistorySQL gives the seed database its history: 5 leads and 3 direct
// events, of which the seed's poller processed the 3 oldest, and one event
// that failed. That leaves 5 pending.
const seedHistorySQL = `
INSERT INTO public.leads (first_name, last_name, phone, status_id, organization_id)
SELECT 'Lead', g::text, '+7999000000' || g, gen_random_uuid(), 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
FROM generate_series(1, 5) g;
SELECT public.publish_event('payment.completed', 'payment', 'p-' || g, jsonb_build_object('n', g), '{}', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')
FROM generate_series(1, 3) g;
UPDATE public.event_bus SET created_at = created_at - interval '1 day';
SELECT public.process_pending_events(3);
INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id, status, retry_count, error_message, created_at)
VALUES ('payment.failed', 'payment', 'p-9', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'failed', 3, 'handler error', now() - interval '1 day');
`

func TestMigrateAndRunAdoptSeedDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t, withSQLBeforeMigrate(testenv.SeedSQL+seedHistorySQL))
	ctx := t.Context()

	type row struct {
		ID          string
		Status      string
		ProcessedAt *time.Time
	}
	readRows := func() map[string]row {
		rows, err := e.db.Query(ctx, `SELECT id::text, status, processed_at FROM public.event_bus`)
		require.NoError(t, err)
		all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		require.NoError(t, err)
		byID := make(map[string]row, len(all))
		for _, r := range all {
			byID[r.ID] = r
		}
		return byID
	}
	before := readRows()
	require.Equal(t, map[string]int{"pending": 5, "processed": 3, "failed": 1}, e.statusCounts(), "the seed's history, migrated")
	var pending []string
	for id, r := range before {
		if r.Status == "pending" {
			pending = append(pending, id)
		} else if r.Status == "processed" {
			require.NotNil(t, r.ProcessedAt, "the seed set processed_at")
		}
	}

	var policies []string
	rows, err := e.db.Query(ctx, `SELECT policyname || ' (' || cmd || ' to ' || array_to_string(roles, ',') || ')'
		FROM pg_policies WHERE schemaname = 'public' AND tablename = 'event_bus'
		AND cmd <> 'SELECT' AND roles <> '{service_role}'`)
	require.NoError(t, err)
	policies, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Empty(t, policies, "no write policy for anyone but service_role: the seed's permissive ones are gone")
	var seedPolicies int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM pg_policies WHERE schemaname = 'public' AND tablename = 'event_bus'
		AND policyname IN ('System can insert events', 'System can update events')`).Scan(&seedPolicies))
	assert.Zero(t, seedPolicies, "the seed's insert and update policies are dropped")

	e.startRelay()
	e.waitProcessed(8, 60*time.Second)

	msgs := e.streamMessages()
	var published []string
	for _, m := range msgs {
		published = append(published, m.Body.ID)
	}
	require.ElementsMatch(t, pending, published, "exactly the pending rows are published")

	after := readRows()
	require.Len(t, after, len(before), "no row lost")
	for id, b := range before {
		a := after[id]
		switch b.Status {
		case "pending":
			assert.Equal(t, "processed", a.Status, "event %s", id)
			assert.NotNil(t, a.ProcessedAt, "event %s", id)
		case "processed":
			assert.Equal(t, b, a, "an event the seed processed is left as it was")
		case "failed":
			assert.Equal(t, "failed", a.Status, "a failed event stays failed until redriven")
		}
	}

	id := e.publish(ctx, "payment.completed", "p-after", `{"after":"migrate"}`)
	e.waitProcessed(9, 30*time.Second)
	msgs = e.streamMessages()
	require.Len(t, msgs, 6)
	assert.Equal(t, id, msgs[5].Body.ID, "publish_event still works after adoption")
	assert.JSONEq(t, `{"after":"migrate"}`, string(msgs[5].Body.Payload))
}

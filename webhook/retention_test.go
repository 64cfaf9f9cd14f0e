package webhook

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv/testdb"
)

// Retention deletes delivered deliveries older than its age, in batches, and
// keeps pending and failed ones (the dead letters) and recent ones.
func TestRetentionPrunesOldDeliveredDeliveries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := testdb.MigratedPool(t)
	store := NewStore(pool)
	e, err := store.Add(ctx, Endpoint{URL: "https://example.com/hook", Enabled: true})
	require.NoError(t, err)

	// 25 delivered two days ago, 3 delivered now, and one pending and one
	// failed from two days ago.
	_, err = pool.Exec(ctx, `INSERT INTO public.event_webhook_deliveries
		(webhook_id, event_id, message_id, event_type, body, status, attempts, delivered_at, created_at)
		SELECT $1::uuid, gen_random_uuid(), 'old-' || i, 'lead.created', '{}', 'delivered', 1, now() - interval '2 days', now() - interval '2 days'
		FROM generate_series(1, 25) i
		UNION ALL
		SELECT $1::uuid, gen_random_uuid(), 'new-' || i, 'lead.created', '{}', 'delivered', 1, now(), now()
		FROM generate_series(1, 3) i
		UNION ALL
		SELECT $1::uuid, gen_random_uuid(), 'old-' || s, 'lead.created', '{}', s, 10, NULL, now() - interval '2 days'
		FROM unnest(ARRAY['pending', 'failed']) s`, e.ID)
	require.NoError(t, err)

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = Retention{Store: store, Age: 24 * time.Hour, Batch: 10}.Run(runCtx) })
	t.Cleanup(func() { stop(); wg.Wait() })

	counts := func() map[string]int {
		rows, err := pool.Query(ctx, `SELECT status, count(*)::int FROM public.event_webhook_deliveries GROUP BY status`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var s string
			var n int
			require.NoError(t, rows.Scan(&s, &n))
			out[s] = n
		}
		require.NoError(t, rows.Err())
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for counts()["delivered"] != 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling the table, with the deadline above
	}
	assert.Equal(t, map[string]int{"delivered": 3, "pending": 1, "failed": 1}, counts())

	n, err := store.PruneDelivered(ctx, 0, 10)
	assert.Error(t, err, "a zero age is refused")
	assert.Zero(t, n)
}

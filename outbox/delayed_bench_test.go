package outbox

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv/testdb"
)

// What event_bus_deliver_at_idx costs an insert: each iteration inserts
// 1000 rows in one statement (so round trips do not drown the difference)
// into a database with the index and into one without it, alternately, so
// that the machine's drift hits both alike; ns/row-with and
// ns/row-without are the two. "plain" rows have ordinary metadata (the
// predicate metadata ? 'deliver_at' is false: no index entry, the function
// never runs); "delayed" rows carry a deliver_at (an index entry, parsed).
//
//	go test -run XXX -bench InsertDeliverAt -benchtime 20x -count 5 ./outbox
func BenchmarkInsertDeliverAtIndex(b *testing.B) {
	const rows = 1000
	metadata := map[string]string{
		"plain":   `jsonb_build_object('trigger', 'insert', 'n', i)`,
		"delayed": `jsonb_build_object('trigger', 'insert', 'deliver_at', '2030-01-02T03:04:05Z')`,
	}
	with, without := benchPool(b), benchPool(b)
	_, err := without.Exec(b.Context(), `DROP INDEX public.event_bus_deliver_at_idx`)
	require.NoError(b, err)
	for _, kind := range []string{"plain", "delayed"} {
		insert := fmt.Sprintf(`INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, metadata, payload)
SELECT 'bench.event', 'bench', i::text, %s, '{"amount": 1}' FROM generate_series(1, %d) i`, metadata[kind], rows)
		b.Run("metadata="+kind, func(b *testing.B) {
			var took [2]time.Duration
			for _, p := range []*pgxpool.Pool{with, without} {
				_, err := p.Exec(b.Context(), `TRUNCATE public.event_bus`)
				require.NoError(b, err)
			}
			for b.Loop() {
				for i, p := range []*pgxpool.Pool{with, without} {
					started := time.Now()
					_, err := p.Exec(b.Context(), insert)
					require.NoError(b, err)
					took[i] += time.Since(started)
				}
			}
			b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N*rows), "ns/row-with")
			b.ReportMetric(float64(took[1].Nanoseconds())/float64(b.N*rows), "ns/row-without")
		})
	}
}

func benchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	return testdb.MigratedPool(b)
}

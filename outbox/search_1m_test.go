package outbox

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// bench1MEnv turns on TestSearchAndAnalyticsOn1MRows, which loads a million
// rows: minutes of a shared machine, so never part of `go test ./...`.
const bench1MEnv = "EVENTBUS_BENCH_1M"

// TestSearchAndAnalyticsOn1MRows measures the monitor's search and analytics
// on a table of 1M events spread over 30 days, and what the payload index
// costs publish_event: the numbers of docs/BENCHMARKS.md "Search and
// analytics". Run it with
//
//	EVENTBUS_BENCH_1M=1 go test -count=1 -timeout 30m -run TestSearchAndAnalyticsOn1MRows -v ./outbox
//
// Each query runs once to warm the cache, then 5 times; the median is
// reported, with the plan (EXPLAIN ANALYZE) of the interesting ones.
func TestSearchAndAnalyticsOn1MRows(t *testing.T) {
	if os.Getenv(bench1MEnv) != "1" {
		t.Skipf("set %s=1 to load 1M rows and time the search and analytics queries", bench1MEnv)
	}
	ctx := t.Context()
	_, pool := newStore(t)
	rows := 1_000_000
	if n, err := strconv.Atoi(os.Getenv(bench1MEnv + "_ROWS")); err == nil { // a smaller smoke run
		rows = n
	}
	now := time.Now().UTC()

	// Load without the payload index, then build it, as a migration on an
	// existing table would.
	_, err := pool.Exec(ctx, `DROP INDEX public.event_bus_payload_path_idx`)
	require.NoError(t, err)
	started := time.Now()
	_, err = pool.Exec(ctx, loadSQL, rows, now)
	require.NoError(t, err)
	t.Logf("load %d rows: %s", rows, time.Since(started).Round(time.Millisecond))
	started = time.Now()
	_, err = pool.Exec(ctx, `CREATE INDEX event_bus_payload_path_idx ON public.event_bus USING gin (payload jsonb_path_ops)`)
	require.NoError(t, err)
	t.Logf("build event_bus_payload_path_idx: %s", time.Since(started).Round(time.Millisecond))
	_, err = pool.Exec(ctx, `VACUUM ANALYZE public.event_bus`)
	require.NoError(t, err)
	for _, rel := range []string{"public.event_bus", "public.event_bus_payload_path_idx", "public.event_bus_created_at_idx"} {
		var size string
		require.NoError(t, pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_relation_size($1::regclass))`, rel).Scan(&size))
		t.Logf("size of %s: %s", rel, size)
	}

	// Values that exist: one lead's id (one row), a first name (1 in 20).
	var leadID, org, aggregateID string
	require.NoError(t, pool.QueryRow(ctx, `SELECT payload->>'lead_id', organization_id::text, aggregate_id FROM public.event_bus
		WHERE created_at > $1::timestamptz - interval '1 hour' LIMIT 1`, now).Scan(&leadID, &org, &aggregateID))
	_, err = pool.Exec(ctx, `INSERT INTO public.profiles (id, organization_id, role) VALUES ($1, $2, 'admin')`, adminOf, org)
	require.NoError(t, err)

	day := now.Add(-24 * time.Hour)
	list := func(f Filter) func(context.Context, Querier) error {
		f.NewestFirst, f.Limit = true, 101
		return func(ctx context.Context, q Querier) error {
			_, err := ListEvents(ctx, q, f)
			return err
		}
	}
	count := func(f Filter) func(context.Context, Querier) error {
		return func(ctx context.Context, q Querier) error {
			_, _, err := CountUpTo(ctx, q, f, 1000)
			return err
		}
	}
	analyze := func(bucket time.Duration, n int) func(context.Context, Querier) error {
		return func(ctx context.Context, q Querier) error {
			_, err := Analyze(ctx, q, time.Now(), bucket, n, 10)
			return err
		}
	}
	cases := []struct {
		name  string
		asOrg bool
		run   func(context.Context, Querier) error
		plan  *Filter
	}{
		{name: "list, no filter", run: list(Filter{})},
		{name: "payload one lead (1 row)", run: list(Filter{PayloadContains: []byte(`{"lead_id": "` + leadID + `"}`)}), plan: &Filter{PayloadContains: []byte(`{"lead_id": "` + leadID + `"}`)}},
		{name: "  its count", run: count(Filter{PayloadContains: []byte(`{"lead_id": "` + leadID + `"}`)})},
		{name: "payload first_name (5%)", run: list(Filter{PayloadContains: []byte(`{"first_name": "Ada"}`)}), plan: &Filter{PayloadContains: []byte(`{"first_name": "Ada"}`)}},
		{name: "  its count (cap 1000)", run: count(Filter{PayloadContains: []byte(`{"first_name": "Ada"}`)})},
		{name: "payload first_name + org", run: list(Filter{PayloadContains: []byte(`{"first_name": "Ada"}`), OrganizationID: org})},
		{name: "payload absent value (0 rows)", run: list(Filter{PayloadContains: []byte(`{"first_name": "Nobody"}`)}), plan: &Filter{PayloadContains: []byte(`{"first_name": "Nobody"}`)}},
		{name: "q common (payment, 10%)", run: list(Filter{Text: "payment"})},
		{name: "  its count (cap 1000)", run: count(Filter{Text: "payment"})},
		{name: "q rare (one aggregate), 24 h", run: list(Filter{Text: aggregateID, Since: day}), plan: &Filter{Text: aggregateID, Since: day}},
		{name: "  its count, 24 h", run: count(Filter{Text: aggregateID, Since: day})},
		{name: "q rare (one aggregate), 30 d", run: list(Filter{Text: aggregateID}), plan: &Filter{Text: aggregateID}},
		{name: "q error text (failed, 2%)", run: list(Filter{Text: "max_payload"})},
		{name: "list as org admin (RLS)", asOrg: true, run: list(Filter{})},
		{name: "payload first_name as org admin", asOrg: true, run: list(Filter{PayloadContains: []byte(`{"first_name": "Ada"}`)})},
		{name: "analytics 1h", run: analyze(time.Minute, 60)},
		{name: "analytics 24h", run: analyze(time.Hour, 24)},
		{name: "analytics 7d", run: analyze(6*time.Hour, 28)},
		{name: "analytics 30d", run: analyze(24*time.Hour, 30)},
		{name: "analytics 24h as org admin", asOrg: true, run: analyze(time.Hour, 24)},
	}
	for _, c := range cases {
		var times []time.Duration
		for i := range 6 {
			started := time.Now()
			err := runAs(ctx, pool, c.asOrg, c.run)
			require.NoError(t, err, c.name)
			if i > 0 { // the first warms the cache
				times = append(times, time.Since(started))
			}
		}
		slices.Sort(times)
		t.Logf("%-36s median %8.2f ms  (min %.2f, max %.2f, n=%d)", c.name, ms(times[len(times)/2]), ms(times[0]), ms(times[len(times)-1]), len(times))
		if c.plan != nil {
			f := *c.plan
			f.NewestFirst, f.Limit = true, 101
			sql, args := f.query(storedColumns)
			t.Logf("  plan:\n%s", explain(t, pool, sql, args...))
		}
	}
	since := time.Now().UTC().Truncate(time.Hour).Add(-23 * time.Hour)
	t.Logf("analytics 24h buckets plan:\n%s", explain(t, pool, bucketsSQL, since, since.Add(24*time.Hour), 3600.0))
	t.Logf("analytics 24h latency plan:\n%s", explain(t, pool, latencySQL, since, since.Add(24*time.Hour)))

	// What the payload index costs a publisher: publish_event, one call per
	// transaction, into two fresh tables, with and without the index, the
	// rounds interleaved; then the relay's status update of the same rows in
	// batches of 500.
	with, without := benchDB(t, true), benchDB(t, false)
	calls := 2000
	if rows < 1_000_000 {
		calls = 100
	}
	var pubWith, pubWithout, markWith, markWithout []time.Duration
	for range 5 {
		for _, d := range []struct {
			pool      *pgxpool.Pool
			pub, mark *[]time.Duration
		}{{with, &pubWith, &markWith}, {without, &pubWithout, &markWithout}} {
			ids := make([]string, 0, calls)
			started := time.Now()
			for i := range calls {
				id, err := Publish(ctx, d.pool, "lead.created", "lead", fmt.Sprintf("lead-%d", i),
					fmt.Appendf(nil, `{"lead_id": "%d-%d", "first_name": "Ada", "last_name": "Lovelace", "phone": "+44 20 7946 0%03d", "status_id": "s-%d", "organization_id": %q}`,
						time.Now().UnixNano(), i, i%1000, i%7, orgA), []byte(`{"trigger": "insert"}`), orgA)
				require.NoError(t, err)
				ids = append(ids, id)
			}
			*d.pub = append(*d.pub, time.Since(started)/time.Duration(calls))
			started = time.Now()
			for batch := range slices.Chunk(ids, 500) {
				_, err := d.pool.Exec(ctx, `UPDATE public.event_bus SET status = 'processed', processed_at = now() WHERE id = ANY($1::uuid[])`, batch)
				require.NoError(t, err)
			}
			*d.mark = append(*d.mark, time.Since(started)/time.Duration(calls))
		}
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"publish_event with the index", pubWith}, {"publish_event without", pubWithout}, {"mark processed with the index", markWith}, {"mark processed without", markWithout}} {
		slices.Sort(m.d)
		t.Logf("%-32s median %6.1f µs per event (min %.1f, max %.1f, %d rounds of %d)", m.name, us(m.d[len(m.d)/2]), us(m.d[0]), us(m.d[len(m.d)-1]), len(m.d), calls)
	}
}

// adminOf is the org admin of the RLS cases.
const adminOf = "cccccccc-1111-4000-8000-000000000003"

// loadSQL writes $1 events created over the 30 days before $2: 8 types (lead
// events the most), 50 organizations (some far busier), 200,000 aggregates,
// the seed's lead payload, 97% processed (5 ms to 2 s after creation), 2%
// failed with an error, 1% pending.
const loadSQL = `INSERT INTO public.event_bus
	(event_type, aggregate_type, aggregate_id, payload, metadata, organization_id, status, created_at, processed_at, retry_count, error_message)
SELECT t.event_type, split_part(t.event_type, '.', 1), split_part(t.event_type, '.', 1) || '-' || (hashint % 200000),
	jsonb_build_object('lead_id', md5(i::text), 'first_name', (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Katherine','Margaret','Linus','Ken',
		'Dennis','Bjarne','Guido','James','Niklaus','John','Frances','Radia','Leslie','Tony'])[1 + i % 20],
		'last_name', 'Surname' || (i % 5000), 'phone', '+7999' || lpad((i % 10000000)::text, 7, '0'),
		'status_id', md5((i % 12)::text)::uuid, 'organization_id', org),
	'{"trigger": "insert"}'::jsonb, org,
	CASE WHEN r < 0.97 THEN 'processed' WHEN r < 0.99 THEN 'failed' ELSE 'pending' END,
	created,
	CASE WHEN r < 0.97 THEN created + (0.005 + 2 * power(random(), 4)) * interval '1 second' END,
	CASE WHEN r < 0.97 THEN 0 WHEN r < 0.99 THEN 5 ELSE 0 END,
	CASE WHEN r >= 0.97 AND r < 0.99 THEN 'nats: maximum payload exceeded (max_payload 1048576)' END
FROM (
	SELECT i, random() AS r, abs(hashint4(i)) AS hashint,
		$2::timestamptz - (i::float8 / $1) * interval '30 days' AS created,
		('00000000-0000-4000-8000-' || lpad((floor(50 * power(random(), 2)))::int::text, 12, '0'))::uuid AS org,
		floor(random() * 100)::int AS k
	FROM generate_series(1, $1) AS i
) s
CROSS JOIN LATERAL (SELECT CASE WHEN k < 40 THEN 'lead.created' WHEN k < 70 THEN 'lead.status_updated' WHEN k < 80 THEN 'payment.completed'
	WHEN k < 88 THEN 'deal.won' WHEN k < 93 THEN 'task.assigned' WHEN k < 97 THEN 'email.sent' WHEN k < 99 THEN 'invoice.issued'
	ELSE 'user.signed_up' END AS event_type) t`

// runAs runs fn in a transaction, as the monitor does: as the table's owner,
// or as the org admin under row level security.
func runAs(ctx context.Context, pool *pgxpool.Pool, asOrg bool, fn func(context.Context, Querier) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if asOrg {
			if _, err := tx.Exec(ctx, `SET LOCAL ROLE authenticated`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT set_config('request.jwt.claims', $1, true)`, `{"sub": "`+adminOf+`", "role": "authenticated"}`); err != nil {
				return err
			}
		}
		return fn(ctx, tx)
	})
}

func explain(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	rows, err := pool.Query(t.Context(), "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+sql, args...)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return "    " + strings.Join(lines, "\n    ")
}

// benchDB is a fresh migrated database, with or without the payload index.
func benchDB(t *testing.T, withIndex bool) *pgxpool.Pool {
	t.Helper()
	_, pool := newStore(t)
	if !withIndex {
		_, err := pool.Exec(t.Context(), `DROP INDEX public.event_bus_payload_path_idx`)
		require.NoError(t, err)
	}
	return pool
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

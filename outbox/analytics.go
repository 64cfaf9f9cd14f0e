package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Analytics are the numbers of the monitor's Analytics view over the events
// created in [Since, Until): how many of each type by status in each bucket,
// how long delivery took, and who produced the most.
type Analytics struct {
	Since, Until time.Time
	Bucket       time.Duration
	// Buckets holds every bucket of the window, oldest first, empty ones
	// too; each lists the event types created in it, by name.
	Buckets []Bucket
	// Latency is created_at to processed_at of the processed events.
	Latency Latency
	// BusiestAggregates and BusiestOrganizations are the ones with the most
	// events, most first (ties by name), at most the top asked for.
	BusiestAggregates    []AggregateCount
	BusiestOrganizations []OrganizationCount
}

// Bucket is one time bucket of Analytics, starting at Start.
type Bucket struct {
	Start time.Time
	Types []TypeCounts
}

// TypeCounts are one event type's events by status.
type TypeCounts struct {
	EventType                              string
	Pending, Processing, Processed, Failed int
}

// Latency is a distribution of delivery times: Count processed events, and
// the 50th, 95th and 99th percentiles (zero when Count is 0).
type Latency struct {
	Count         int
	P50, P95, P99 time.Duration
}

// AggregateCount is how many events one aggregate had.
type AggregateCount struct {
	AggregateType, AggregateID string
	Count                      int
}

// OrganizationCount is how many events one organization had; "" is the
// events without one.
type OrganizationCount struct {
	OrganizationID string
	Count          int
}

// The statements of Analyze. Each reads the window's rows through
// event_bus_created_at_idx (a range of created_at), so their cost grows with
// the events of the window, not with the table: see docs/BENCHMARKS.md
// "Search and analytics".
const (
	// Buckets are whole multiples of the bucket size since the epoch, as
	// Analyze aligns the window's start. date_bin (PostgreSQL 14+) works on
	// the timestamp itself: the same bucket computed through extract(epoch)
	// is numeric arithmetic, and made this statement 7 times slower on 7
	// days of the 1M-row table.
	bucketsSQL = `SELECT date_bin(make_interval(secs => $3), created_at, '1970-01-01 00:00:00+00') AS bucket, event_type,
		count(*) FILTER (WHERE status = 'pending' OR status IS NULL),
		count(*) FILTER (WHERE status = 'processing'),
		count(*) FILTER (WHERE status = 'processed'),
		count(*) FILTER (WHERE status = 'failed')
	FROM public.event_bus WHERE created_at >= $1 AND created_at < $2
	GROUP BY 1, 2 ORDER BY 1, 2`

	// created_at is the publishing transaction's start, not its commit: the
	// latency includes the rest of that transaction.
	latencySQL = `SELECT count(*), coalesce(percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - created_at)), '{0,0,0}')
	FROM public.event_bus WHERE created_at >= $1 AND created_at < $2 AND status = 'processed' AND processed_at IS NOT NULL`

	busiestAggregatesSQL = `SELECT aggregate_type, aggregate_id, count(*) FROM public.event_bus
	WHERE created_at >= $1 AND created_at < $2
	GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT $3`

	busiestOrganizationsSQL = `SELECT coalesce(organization_id::text, ''), count(*) FROM public.event_bus
	WHERE created_at >= $1 AND created_at < $2
	GROUP BY organization_id ORDER BY 2 DESC, 1 LIMIT $3`
)

// Analyze computes, through q (the monitor's transaction as its caller, so
// row level security decides which events count), the analytics of the n
// buckets of size bucket up to now: the last bucket is the one holding now,
// the first starts n-1 buckets before it, both aligned to whole multiples of
// bucket since the epoch (whole hours, whole UTC days). top bounds the
// busiest lists.
func Analyze(ctx context.Context, q Querier, now time.Time, bucket time.Duration, n, top int) (Analytics, error) {
	a := Analytics{Bucket: bucket}
	last := now.UTC().Truncate(bucket)
	a.Since, a.Until = last.Add(-time.Duration(n-1)*bucket), last.Add(bucket)
	index := make(map[time.Time]int, n)
	for i := range n {
		start := a.Since.Add(time.Duration(i) * bucket)
		a.Buckets = append(a.Buckets, Bucket{Start: start, Types: []TypeCounts{}})
		index[start] = i
	}

	rows, err := q.Query(ctx, bucketsSQL, a.Since, a.Until, bucket.Seconds())
	if err != nil {
		return a, fmt.Errorf("count events per bucket: %w", err)
	}
	var start time.Time
	var c TypeCounts
	_, err = pgx.ForEachRow(rows, []any{&start, &c.EventType, &c.Pending, &c.Processing, &c.Processed, &c.Failed}, func() error {
		i, ok := index[start.UTC()]
		if !ok {
			return fmt.Errorf("bucket %s is not one of the window's", start.UTC())
		}
		a.Buckets[i].Types = append(a.Buckets[i].Types, c)
		return nil
	})
	if err != nil {
		return a, fmt.Errorf("count events per bucket: %w", err)
	}

	var secs []float64
	if err := q.QueryRow(ctx, latencySQL, a.Since, a.Until).Scan(&a.Latency.Count, &secs); err != nil {
		return a, fmt.Errorf("measure delivery latency: %w", err)
	}
	if len(secs) == 3 {
		toDuration := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)).Round(time.Microsecond) }
		a.Latency.P50, a.Latency.P95, a.Latency.P99 = toDuration(secs[0]), toDuration(secs[1]), toDuration(secs[2])
	}

	rows, err = q.Query(ctx, busiestAggregatesSQL, a.Since, a.Until, top)
	if err != nil {
		return a, fmt.Errorf("find the busiest aggregates: %w", err)
	}
	a.BusiestAggregates, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AggregateCount, error) {
		var ac AggregateCount
		return ac, r.Scan(&ac.AggregateType, &ac.AggregateID, &ac.Count)
	})
	if err != nil {
		return a, fmt.Errorf("find the busiest aggregates: %w", err)
	}

	rows, err = q.Query(ctx, busiestOrganizationsSQL, a.Since, a.Until, top)
	if err != nil {
		return a, fmt.Errorf("find the busiest organizations: %w", err)
	}
	a.BusiestOrganizations, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (OrganizationCount, error) {
		var oc OrganizationCount
		return oc, r.Scan(&oc.OrganizationID, &oc.Count)
	})
	if err != nil {
		return a, fmt.Errorf("find the busiest organizations: %w", err)
	}
	return a, nil
}

package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TypeActivity is what the catalog view shows of one registered type's
// events: the latest one (an example payload) and counts per version.
type TypeActivity struct {
	Latest *ExampleEvent
	// PerVersion counts the events created since the given time by the
	// version they carry: metadata.version when it is an integer, else the
	// version that was current when the event was created. The relay
	// decides at publish time, a moment later, so an event inserted just
	// before a new version was added may be counted under the older one.
	PerVersion map[int]int
}

// ExampleEvent is the latest event of a type.
type ExampleEvent struct {
	ID        string          `json:"id"`
	Payload   json.RawMessage `json:"payload"`
	Metadata  json.RawMessage `json:"metadata"`
	Status    string          `json:"status"`
	CreatedAt *time.Time      `json:"created_at"`
}

// latestByTypeSQL reads the newest event of each type, one index probe per
// type (event_bus_created_at_idx walked backwards until the type appears is
// what the planner does without an index on event_type; the types are few).
const latestByTypeSQL = `SELECT t.event_type, l.id::text, l.payload::text, l.metadata::text, coalesce(l.status, 'pending'), l.created_at
FROM unnest($1::text[]) AS t(event_type)
CROSS JOIN LATERAL (
  SELECT e.id, e.payload, e.metadata, e.status, e.created_at FROM public.event_bus e
  WHERE e.event_type = t.event_type
  ORDER BY e.created_at DESC NULLS LAST, e.id DESC LIMIT 1) l`

// perVersionSQL counts the events of registered types since $1 by version.
const perVersionSQL = `SELECT e.event_type,
  coalesce(CASE WHEN e.metadata->>'version' ~ '^[0-9]{1,9}$' THEN (e.metadata->>'version')::int END,
    (SELECT max(v.version) FROM public.event_types v WHERE v.event_type = e.event_type AND v.created_at <= e.created_at),
    (SELECT min(v.version) FROM public.event_types v WHERE v.event_type = e.event_type), 0) AS version,
  count(*)::int
FROM public.event_bus e
WHERE e.created_at >= $1 AND e.event_type = ANY($2::text[])
GROUP BY 1, 2`

// Activity returns the TypeActivity of each of types (those with no event
// are missing from the map), under q's visibility (the caller's RLS).
func Activity(ctx context.Context, q Querier, types []string, since time.Time) (map[string]*TypeActivity, error) {
	out := make(map[string]*TypeActivity, len(types))
	of := func(t string) *TypeActivity {
		if out[t] == nil {
			out[t] = &TypeActivity{PerVersion: map[int]int{}}
		}
		return out[t]
	}
	rows, err := q.Query(ctx, latestByTypeSQL, types)
	if err != nil {
		return nil, fmt.Errorf("read the latest events by type: %w", err)
	}
	var (
		eventType, id, status string
		payload, metadata     *string
		created               *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&eventType, &id, &payload, &metadata, &status, &created}, func() error {
		ex := &ExampleEvent{ID: id, Status: status, CreatedAt: created, Payload: json.RawMessage("{}"), Metadata: json.RawMessage("{}")}
		if payload != nil {
			ex.Payload = json.RawMessage(*payload)
		}
		if metadata != nil {
			ex.Metadata = json.RawMessage(*metadata)
		}
		of(eventType).Latest = ex
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the latest events by type: %w", err)
	}
	rows, err = q.Query(ctx, perVersionSQL, since, types)
	if err != nil {
		return nil, fmt.Errorf("count events by version: %w", err)
	}
	var version, n int
	_, err = pgx.ForEachRow(rows, []any{&eventType, &version, &n}, func() error {
		of(eventType).PerVersion[version] += n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count events by version: %w", err)
	}
	return out, nil
}

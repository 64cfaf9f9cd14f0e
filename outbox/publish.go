package outbox

import (
	"context"
	"fmt"
)

// publishSQL is the one call of publish_event, for `eventbus publish` and the
// monitor's POST /api/events.
const publishSQL = `SELECT public.publish_event($1, $2, $3, $4::jsonb, $5::jsonb, $6::uuid)::text`

// Publish calls publish_event through q and returns the new event's id.
// payload and metadata are JSON, nil for NULL (which publish_event stores as
// {}); an organizationID of "" is NULL (publish_event then takes the
// caller's organization). The error is the database's, unwrapped: callers
// tell bad input (22023) and a refusal (42501) by its code, and the monitor
// shows its text as it is.
func Publish(ctx context.Context, q RowQuerier, eventType, aggregateType, aggregateID string, payload, metadata []byte, organizationID string) (string, error) {
	var org any
	if organizationID != "" {
		org = organizationID
	}
	var id string
	err := q.QueryRow(ctx, publishSQL, eventType, aggregateType, aggregateID, jsonArg(payload), jsonArg(metadata), org).Scan(&id)
	return id, err
}

// jsonArg passes JSON to Postgres as text, nil as NULL.
func jsonArg(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// Publish calls publish_event and returns the new event's id.
func (s *Store) Publish(ctx context.Context, eventType, aggregateType, aggregateID string, payload, metadata []byte, organizationID string) (string, error) {
	id, err := Publish(ctx, s.pool, eventType, aggregateType, aggregateID, payload, metadata, organizationID)
	if err != nil {
		return "", fmt.Errorf("publish_event: %w", err)
	}
	return id, nil
}

// ProcessPending calls process_pending_events(limit) through q: it hands up
// to limit pending (older than a few seconds) or failed events back to the
// relay for another delivery attempt, and returns how many. Like Publish's,
// its error is the database's, unwrapped.
func ProcessPending(ctx context.Context, q RowQuerier, limit int) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT public.process_pending_events($1)`, limit).Scan(&n)
	return n, err
}

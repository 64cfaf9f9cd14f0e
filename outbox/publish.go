package outbox

import (
	"context"
	"fmt"
)

// Publish calls publish_event and returns the new event's id.
func (s *Store) Publish(ctx context.Context, eventType, aggregateType, aggregateID string, payload, metadata []byte, organizationID string) (string, error) {
	var org any
	if organizationID != "" {
		org = organizationID
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT public.publish_event($1, $2, $3, $4::jsonb, $5::jsonb, $6::uuid)::text`,
		eventType, aggregateType, aggregateID, string(payload), string(metadata), org).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("publish_event: %w", err)
	}
	return id, nil
}

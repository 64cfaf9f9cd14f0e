// Package outbox is the relay's view of the public.event_bus table: the Event
// row type every stage passes along, and the queries that read pending rows
// and write statuses back (processed, retry_count, failed).
package outbox

import "time"

// Status values of event_bus.status, as in the seed's CHECK constraint.
const (
	StatusPending    = "pending"
	StatusProcessing = "processing"
	StatusProcessed  = "processed"
	StatusFailed     = "failed"
)

// Event is one event_bus row as the relay publishes it. Payload and Metadata
// are raw JSON exactly as Postgres rendered them; they are never re-encoded.
type Event struct {
	ID             string
	EventType      string
	AggregateType  string
	AggregateID    string
	OrganizationID string    // "" when NULL
	Payload        []byte    // nil when NULL
	Metadata       []byte    // nil when NULL
	CreatedAt      time.Time // zero when NULL
	// Status is the row's status as inserted; the stream carries it, the
	// relay publishes only rows inserted pending (or NULL).
	Status string

	// DecodeErr is set when the row could not be decoded; the relay records it
	// as a per-event failure instead of publishing.
	DecodeErr error
}

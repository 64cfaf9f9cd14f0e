// Package event is the noun every stage of eventbus passes along: one row of
// public.event_bus as the relay publishes it, the values of its status
// column, the prefix of the logical messages that hand events back to the
// relay, and the form of an event id. It imports nothing of eventbus, so
// every other package may import it (as river has rivertype).
package event

import "time"

// Status values of event_bus.status, as in the seed's CHECK constraint.
const (
	StatusPending    = "pending"
	StatusProcessing = "processing"
	StatusProcessed  = "processed"
	StatusFailed     = "failed"
)

// ValidStatus reports whether s is one of the four statuses.
func ValidStatus(s string) bool {
	switch s {
	case StatusPending, StatusProcessing, StatusProcessed, StatusFailed:
		return true
	}
	return false
}

// RedrivePrefix is the prefix of the transactional logical decoding messages
// that hand events back to the relay (process_pending_events, the relay's
// redrive sweep); their content is the events' ids, comma-separated.
const RedrivePrefix = "eventbus.redrive"

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

	// CommitLSN is the WAL position of the commit of the transaction that
	// inserted the row, when the row came from the replication stream; 0
	// when it was read from the table (backfill, redrive, replay).
	CommitLSN uint64

	// DecodeErr is set when the row could not be decoded; the relay records it
	// as a per-event failure instead of publishing.
	DecodeErr error
}

// ValidID reports whether s is a UUID in its usual text form
// (8-4-4-4-12 hexadecimal digits), the form of event_bus.id and of
// organization ids. Callers check ids with it before they reach SQL, where
// one malformed id would fail a whole batch.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

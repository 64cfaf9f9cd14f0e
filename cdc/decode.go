package cdc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/eventbus/eventbus/event"
)

// ChangeKind says what a Change carries.
type ChangeKind uint8

// The kinds of Change, see the package documentation for their order.
const (
	Begin ChangeKind = iota + 1
	Insert
	Redrive
	Commit
	Position
)

func (k ChangeKind) String() string {
	switch k {
	case Begin:
		return "begin"
	case Insert:
		return "insert"
	case Redrive:
		return "redrive"
	case Commit:
		return "commit"
	case Position:
		return "position"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one decoded step of the replication stream.
type Change struct {
	Kind ChangeKind
	// CommitLSN (Begin) is where the transaction's commit record is: it
	// orders the transaction against a WAL position read elsewhere.
	CommitLSN pglogrepl.LSN
	// EndLSN (Commit) is the end of the transaction's commit record: the
	// position to confirm once every event of it is done.
	EndLSN pglogrepl.LSN
	// WALEnd (Position) is the server's WAL end reported by a keepalive:
	// everything before it has been sent, so it is safe to confirm once
	// everything received before it is done.
	WALEnd     pglogrepl.LSN
	CommitTime time.Time    // Begin: commit time; Position: the server's clock
	Xid        uint32       // Begin: the transaction's id
	Event      *event.Event // Insert
	IDs        []string     // Redrive: event ids handed back by process_pending_events
	InvalidIDs []string     // Redrive: tokens of the message that are not event ids, ignored
}

// decoder turns pgoutput messages into Changes. It keeps the relation cache:
// pgoutput sends a Relation message before the first change of a table in a
// session and again after a schema change.
type decoder struct {
	relations map[uint32]*relation
	commitLSN pglogrepl.LSN // of the transaction being decoded
}

type relation struct {
	eventBus bool
	columns  map[string]int // column name → position in a tuple
}

func newDecoder() *decoder { return &decoder{relations: make(map[uint32]*relation)} }

// decode parses one pgoutput message. It returns ok=false for messages that
// carry nothing for the relay (relations, types, origins, other tables).
func (d *decoder) decode(data []byte) (_ Change, _ bool, err error) {
	// pglogrepl.Parse indexes into the message without bounds checks; a
	// truncated message must end the session with an error, not a panic.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed pgoutput message (%d bytes): %v", len(data), p)
		}
	}()
	if len(data) == 0 {
		return Change{}, false, errors.New("empty pgoutput message")
	}
	switch pglogrepl.MessageType(data[0]) {
	case pglogrepl.MessageTypeRelation, pglogrepl.MessageTypeBegin, pglogrepl.MessageTypeCommit,
		pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeMessage:
	default:
		// Not parsed at all: nothing the relay needs, and a truncate message
		// would make pglogrepl allocate by a count read from the wire.
		return Change{}, false, nil
	}
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return Change{}, false, fmt.Errorf("parse pgoutput message: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		r := &relation{
			eventBus: m.Namespace == "public" && m.RelationName == "event_bus",
			columns:  make(map[string]int, len(m.Columns)),
		}
		for i, c := range m.Columns {
			r.columns[c.Name] = i
		}
		d.relations[m.RelationID] = r
	case *pglogrepl.BeginMessage:
		d.commitLSN = m.FinalLSN
		return Change{Kind: Begin, CommitLSN: m.FinalLSN, CommitTime: m.CommitTime, Xid: m.Xid}, true, nil
	case *pglogrepl.CommitMessage:
		return Change{Kind: Commit, EndLSN: m.TransactionEndLSN}, true, nil
	case *pglogrepl.InsertMessage:
		r, found := d.relations[m.RelationID]
		if !found {
			return Change{}, false, fmt.Errorf("insert into unknown relation %d: no Relation message received", m.RelationID)
		}
		if !r.eventBus {
			return Change{}, false, nil
		}
		e := r.event(m.Tuple)
		e.CommitLSN = uint64(d.commitLSN)
		return Change{Kind: Insert, Event: &e}, true, nil
	case *pglogrepl.LogicalDecodingMessage:
		if !m.Transactional || m.Prefix != event.RedrivePrefix {
			return Change{}, false, nil
		}
		ids, invalid := splitIDs(string(m.Content))
		return Change{Kind: Redrive, IDs: ids, InvalidIDs: invalid}, true, nil
	}
	return Change{}, false, nil
}

func splitIDs(s string) (ids, invalid []string) {
	for _, id := range strings.Split(s, ",") {
		switch id = strings.TrimSpace(id); {
		case id == "":
		case event.ValidID(id):
			ids = append(ids, id)
		default:
			invalid = append(invalid, id)
		}
	}
	return ids, invalid
}

// event decodes an event_bus tuple by column name. A row that cannot be
// decoded still yields an Event with DecodeErr set (and its id when known), so
// the relay can mark it failed instead of stopping the stream.
func (r *relation) event(t *pglogrepl.TupleData) event.Event {
	var e event.Event
	var errs []error
	text := func(name string, required bool) (string, bool) {
		i, ok := r.columns[name]
		if !ok || t == nil || i >= len(t.Columns) {
			if required {
				errs = append(errs, fmt.Errorf("column %s missing", name))
			}
			return "", false
		}
		c := t.Columns[i]
		switch c.DataType {
		case pglogrepl.TupleDataTypeText:
			return string(c.Data), true
		case pglogrepl.TupleDataTypeNull:
			if required {
				errs = append(errs, fmt.Errorf("column %s is NULL", name))
			}
			return "", false
		default:
			errs = append(errs, fmt.Errorf("column %s has unsupported tuple data type %q", name, c.DataType))
			return "", false
		}
	}
	raw := func(name string) []byte {
		if s, ok := text(name, false); ok {
			return []byte(s)
		}
		return nil
	}
	e.ID, _ = text("id", true)
	e.EventType, _ = text("event_type", true)
	e.AggregateType, _ = text("aggregate_type", true)
	e.AggregateID, _ = text("aggregate_id", true)
	e.OrganizationID, _ = text("organization_id", false)
	e.Status, _ = text("status", false)
	e.Payload = raw("payload")
	e.Metadata = raw("metadata")
	if s, ok := text("created_at", false); ok {
		ts, err := ParseTimestamp(s)
		if err != nil {
			errs = append(errs, err)
		}
		e.CreatedAt = ts
	}
	e.DecodeErr = errors.Join(errs...)
	return e
}

// timestampLayouts are the ISO DateStyle renderings of timestamptz: the
// replication connection sets DateStyle=ISO and TimeZone=UTC, but a zone with
// minutes or seconds is accepted too.
var timestampLayouts = []string{
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999-07:00:00",
}

// ParseTimestamp parses a timestamptz in PostgreSQL's ISO output format.
func ParseTimestamp(s string) (time.Time, error) {
	for _, layout := range timestampLayouts {
		if ts, err := time.Parse(layout, s); err == nil {
			return ts.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("created_at %q is not an ISO timestamp", s)
}

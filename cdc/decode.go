package cdc

import (
	"encoding/binary"
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
	columns   []column      // decodeInsert's, reused
}

type relation struct {
	eventBus bool
	columns  map[string]int // column name → position in a tuple
	// at holds the tuple position of each eventColumns entry, -1 when the
	// table has no such column.
	at [len(eventColumns)]int
}

// eventColumns are the columns of event_bus an Event is decoded from.
var eventColumns = [...]string{"id", "event_type", "aggregate_type", "aggregate_id", "organization_id", "status", "created_at", "payload", "metadata"}

// Positions in eventColumns; the text columns come first (through created_at).
const (
	colID = iota
	colEventType
	colAggregateType
	colAggregateID
	colOrganizationID
	colStatus
	colCreatedAt
	colPayload
	colMetadata
)

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
	if pglogrepl.MessageType(data[0]) == pglogrepl.MessageTypeInsert {
		return d.decodeInsert(data)
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
		for i, name := range eventColumns {
			r.at[i] = -1
			if pos, ok := r.columns[name]; ok {
				r.at[i] = pos
			}
		}
		d.relations[m.RelationID] = r
	case *pglogrepl.BeginMessage:
		d.commitLSN = m.FinalLSN
		return Change{Kind: Begin, CommitLSN: m.FinalLSN, CommitTime: m.CommitTime, Xid: m.Xid}, true, nil
	case *pglogrepl.CommitMessage:
		return Change{Kind: Commit, EndLSN: m.TransactionEndLSN}, true, nil
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

// column is one value of a tuple: its kind ('n' NULL, 'u' unchanged TOAST,
// 't' text, 'b' binary) and its bytes, a slice of the message.
type column struct {
	kind byte
	data []byte
}

// decodeInsert decodes an Insert message ('I', relation id, 'N', tuple)
// itself: pglogrepl.Parse copies every column twice over (a struct and its
// bytes), 24 of the 41 allocations an insert used to cost. The columns are
// read in place and copied once, into the Event.
func (d *decoder) decodeInsert(data []byte) (Change, bool, error) {
	if len(data) < 8 || data[5] != 'N' {
		return Change{}, false, fmt.Errorf("parse pgoutput message: malformed insert (%d bytes)", len(data))
	}
	relID := binary.BigEndian.Uint32(data[1:5])
	r, found := d.relations[relID]
	if !found {
		return Change{}, false, fmt.Errorf("insert into unknown relation %d: no Relation message received", relID)
	}
	if !r.eventBus {
		return Change{}, false, nil
	}
	n := int(binary.BigEndian.Uint16(data[6:8]))
	d.columns = d.columns[:0]
	rest := data[8:]
	for range n {
		if len(rest) < 1 {
			return Change{}, false, fmt.Errorf("parse pgoutput message: insert truncated after %d of %d columns", len(d.columns), n)
		}
		c := column{kind: rest[0]}
		rest = rest[1:]
		if c.kind == pglogrepl.TupleDataTypeText || c.kind == pglogrepl.TupleDataTypeBinary {
			if len(rest) < 4 {
				return Change{}, false, fmt.Errorf("parse pgoutput message: insert truncated in column %d", len(d.columns))
			}
			size := binary.BigEndian.Uint32(rest)
			rest = rest[4:]
			if uint64(size) > uint64(len(rest)) {
				return Change{}, false, fmt.Errorf("parse pgoutput message: column %d of %d bytes in an insert of %d", len(d.columns), size, len(data))
			}
			c.data, rest = rest[:size], rest[size:]
		}
		d.columns = append(d.columns, c)
	}
	e := r.event(d.columns)
	e.CommitLSN = uint64(d.commitLSN)
	return Change{Kind: Insert, Event: e}, true, nil
}

// event decodes an event_bus tuple by column name. A row that cannot be
// decoded still yields an Event with DecodeErr set (and its id when known), so
// the relay can mark it failed instead of stopping the stream. The text
// fields share one string and payload and metadata one byte slice: three
// allocations with the Event itself.
func (r *relation) event(cols []column) *event.Event {
	e := new(event.Event)
	var errs []error
	// value returns column i of eventColumns, ok = false when NULL or
	// missing (an error when required) or of a kind the relay cannot read.
	value := func(i int, required bool) ([]byte, bool) {
		pos := r.at[i]
		if pos < 0 || pos >= len(cols) {
			if required {
				errs = append(errs, fmt.Errorf("column %s missing", eventColumns[i]))
			}
			return nil, false
		}
		switch c := cols[pos]; c.kind {
		case pglogrepl.TupleDataTypeText:
			return c.data, true
		case pglogrepl.TupleDataTypeNull:
			if required {
				errs = append(errs, fmt.Errorf("column %s is NULL", eventColumns[i]))
			}
			return nil, false
		default:
			errs = append(errs, fmt.Errorf("column %s has unsupported tuple data type %q", eventColumns[i], c.kind))
			return nil, false
		}
	}
	var texts [colCreatedAt + 1][]byte
	var present [colCreatedAt + 1]bool
	size := 0
	for i := range texts {
		texts[i], present[i] = value(i, i <= colAggregateID)
		size += len(texts[i])
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, t := range texts {
		sb.Write(t)
	}
	all, off := sb.String(), 0
	var fields [colCreatedAt + 1]string
	for i, t := range texts {
		fields[i] = all[off : off+len(t)]
		off += len(t)
	}
	e.ID, e.EventType, e.AggregateType, e.AggregateID = fields[colID], fields[colEventType], fields[colAggregateType], fields[colAggregateID]
	e.OrganizationID, e.Status = fields[colOrganizationID], fields[colStatus]
	payload, hasPayload := value(colPayload, false)
	metadata, hasMetadata := value(colMetadata, false)
	if hasPayload || hasMetadata {
		raw := make([]byte, len(payload)+len(metadata))
		copy(raw, payload)
		copy(raw[len(payload):], metadata)
		if hasPayload {
			e.Payload = raw[:len(payload):len(payload)]
		}
		if hasMetadata {
			e.Metadata = raw[len(payload):]
		}
	}
	if present[colCreatedAt] {
		ts, err := ParseTimestamp(fields[colCreatedAt])
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
	if ts, ok := parseUTCTimestamp(s); ok {
		return ts, nil
	}
	for _, layout := range timestampLayouts {
		if ts, err := time.Parse(layout, s); err == nil {
			return ts.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("created_at %q is not an ISO timestamp", s)
}

// parseUTCTimestamp parses the one rendering the replication connection
// produces, 2006-01-02 15:04:05[.ffffff]+00, without time.Parse's layout
// interpretation (a tenth of the relay's decoding time per event); ok is
// false for anything else, which ParseTimestamp's layouts then take.
func parseUTCTimestamp(s string) (t time.Time, ok bool) {
	// 2006-01-02 15:04:05+00: 22 bytes; a fraction goes before the zone.
	if len(s) < 22 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[len(s)-3:] != "+00" {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := s[19 : len(s)-3]; frac != "" {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n, ok := num(20, len(s)-3)
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) { // to nanoseconds: 9 digits
			n *= 10
		}
		nsec = n
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // February 30th and the like: time.Date moved it
		return time.Time{}, false
	}
	return t, true
}

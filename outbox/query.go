package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/event"
)

// RowQuerier runs a query returning one row: a pool, a connection or a
// transaction (the monitor counts inside a transaction run as its caller).
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Querier runs queries: *pgxpool.Pool, *pgx.Conn and pgx.Tx are Queriers.
// The functions that take one run on the caller's connection or transaction,
// so that the monitor's reads and writes happen as its caller, under row
// level security; the Store's methods run on its pool.
type Querier interface {
	RowQuerier
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Filter selects events: for replay (Scan, Count), verify (ScanPositions,
// Scan) and for the monitor's list (ListEvents). Zero fields do not filter; several values of one field match
// any of them.
type Filter struct {
	Since          time.Time // created_at >= Since
	Until          time.Time // created_at < Until
	EventTypes     []string
	AggregateTypes []string
	Statuses       []string
	IDs            []string
	// AggregateIDPrefix matches the aggregate ids that start with it.
	AggregateIDPrefix string
	OrganizationID    string
	// PayloadContains keeps the events whose payload contains this JSON
	// (jsonb @>, served by event_bus_payload_path_idx); the caller checks
	// that it is a JSON object.
	PayloadContains []byte
	// Text keeps the events where it occurs, case-insensitively, in
	// event_type, aggregate_id or error_message. No index serves it: it is
	// tested on the rows the other conditions and the order leave.
	Text string
	// Before keeps the events before it in newest-first order,
	// (created_at, id) < (Before.CreatedAt, Before.ID): a keyset cursor,
	// which the index on created_at serves without reading skipped rows.
	// A zero Before.CreatedAt is a row whose created_at is NULL, which
	// newest-first order lists before every dated row.
	Before *Position

	// NewestFirst orders by created_at, then id, descending; otherwise
	// both ascend.
	NewestFirst bool
	// Limit bounds how many events Scan and ListEvents return; 0 is no
	// bound. Count counts every match, whatever Limit and the order.
	Limit int
}

// Position is where an event stands in created_at, id order.
type Position struct {
	CreatedAt time.Time
	ID        string
}

// where renders the filter as a WHERE clause with numbered arguments.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if !f.Since.IsZero() {
		add("created_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("created_at < $%d", f.Until)
	}
	if len(f.EventTypes) > 0 {
		add("event_type = ANY($%d)", f.EventTypes)
	}
	if len(f.AggregateTypes) > 0 {
		add("aggregate_type = ANY($%d)", f.AggregateTypes)
	}
	if len(f.Statuses) > 0 {
		add("status = ANY($%d)", f.Statuses)
	}
	if len(f.IDs) > 0 {
		add("id = ANY($%d::uuid[])", f.IDs)
	}
	if f.AggregateIDPrefix != "" {
		add("starts_with(aggregate_id, $%d)", f.AggregateIDPrefix)
	}
	if f.OrganizationID != "" {
		add("organization_id = $%d::uuid", f.OrganizationID)
	}
	if f.PayloadContains != nil {
		add("payload @> $%d::jsonb", string(f.PayloadContains))
	}
	if f.Text != "" {
		args = append(args, "%"+likeEscaper.Replace(f.Text)+"%")
		n := len(args)
		conds = append(conds, fmt.Sprintf("(event_type ILIKE $%d OR aggregate_id ILIKE $%d OR error_message ILIKE $%d)", n, n, n))
	}
	switch {
	case f.Before == nil:
	case f.Before.CreatedAt.IsZero():
		// Newest first puts NULL created_at first (DESC is NULLS FIRST):
		// after a NULL row come the NULL rows of smaller id, then every
		// dated row. A row comparison with NULL is NULL, hence the two arms.
		add("(created_at IS NULL AND id < $%d::uuid OR created_at IS NOT NULL)", f.Before.ID)
	default:
		args = append(args, f.Before.CreatedAt, f.Before.ID)
		conds = append(conds, fmt.Sprintf("(created_at, id) < ($%d, $%d::uuid)", len(args)-1, len(args)))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// likeEscaper makes text match itself in a LIKE pattern (whose escape
// character is the backslash by default).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// query renders the SELECT of columns from the events matching f, in f's
// order, at most f.Limit of them.
func (f Filter) query(columns string) (string, []any) {
	where, args := f.where()
	sql := `SELECT ` + columns + ` FROM public.event_bus` + where
	if f.NewestFirst {
		sql += ` ORDER BY created_at DESC, id DESC`
	} else {
		sql += ` ORDER BY created_at, id`
	}
	if f.Limit > 0 {
		sql += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	return sql, args
}

// Scan calls fn for each event matching f, in f's order (created_at order
// unless NewestFirst), streaming rows from the server.
func (s *Store) Scan(ctx context.Context, f Filter, fn func(event.Event) error) (int, error) {
	sql, args := f.query(selectColumns)
	return streamEvents(ctx, s.pool, "read events", sql, args, fn)
}

// ScanPositions is Scan reading only the position (created_at, id) of each
// event: for a caller that holds many events' ids at once (eventbus verify
// holds a window's), without the payloads crossing the wire. A NULL
// created_at reads as the zero time.
func (s *Store) ScanPositions(ctx context.Context, f Filter, fn func(Position) error) (int, error) {
	sql, args := f.query(`created_at, id::text`)
	return streamRows(ctx, s.pool, "read event ids", sql, args, func(row pgx.Row) (Position, error) {
		var p Position
		var created *time.Time
		err := row.Scan(&created, &p.ID)
		if created != nil {
			p.CreatedAt = *created
		}
		return p, err
	}, fn)
}

// streamEvents runs sql on q and calls fn for each event it returns, as the
// rows arrive, so memory does not grow with their number. what names the read
// in errors.
func streamEvents(ctx context.Context, q Querier, what, sql string, args []any, fn func(event.Event) error) (int, error) {
	return streamRows(ctx, q, what, sql, args, func(row pgx.Row) (event.Event, error) { return scanEvent(row) }, fn)
}

// streamRows runs sql on q and calls fn with each row it returns, read by
// scan, as the rows arrive.
func streamRows[T any](ctx context.Context, q Querier, what, sql string, args []any, scan func(pgx.Row) (T, error), fn func(T) error) (int, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return n, fmt.Errorf("%s: %w", what, err)
		}
		if err := fn(v); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}

// Count returns how many events match f.
func (s *Store) Count(ctx context.Context, f Filter) (int, error) {
	where, args := f.where()
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM public.event_bus`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// CountUpTo counts through q the events matching f (whatever its Before,
// order and Limit), but stops at most: capped is true when there are more.
// A count bounded so costs at most what reading most+1 matching rows costs,
// where an exact count of a broad filter on a large table reads all of them.
func CountUpTo(ctx context.Context, q RowQuerier, f Filter, most int) (n int, capped bool, err error) {
	f.Before = nil
	where, args := f.where()
	sql := fmt.Sprintf(`SELECT count(*) FROM (SELECT FROM public.event_bus%s LIMIT %d) AS matched`, where, most+1)
	if err := q.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, false, fmt.Errorf("count events: %w", err)
	}
	if n > most {
		return most, true, nil
	}
	return n, false, nil
}

// StoredEvent is an event_bus row with what its delivery wrote to it: the
// row as the monitor shows it. Its Status is the row's status now
// ("pending" when NULL), not as inserted.
//
// It has no JSON form of its own: the monitor's API type converts it,
// because event.Event has none either (Payload as []byte would encode as
// base64, a NULL organization as "") and the API's JSON stays as it was.
type StoredEvent struct {
	event.Event
	ProcessedAt  *time.Time // nil until processed
	RetryCount   int        // failed delivery attempts (0 when NULL)
	ErrorMessage *string    // the last attempt's error; nil when none
}

// storedColumns are selectColumns and the delivery columns, in scanStored's order.
const storedColumns = selectColumns + `,
	coalesce(status, 'pending'), processed_at, coalesce(retry_count, 0), error_message`

func scanStored(row pgx.Row) (StoredEvent, error) {
	var s StoredEvent
	var status string
	e, err := scanEvent(row, &status, &s.ProcessedAt, &s.RetryCount, &s.ErrorMessage)
	s.Event, s.Status = e, status
	return s, err
}

// ListEvents returns through q the events matching f, with their delivery
// columns, in f's order. q is usually the monitor's transaction as its
// caller, so row level security decides which rows there are.
func ListEvents(ctx context.Context, q Querier, f Filter) ([]StoredEvent, error) {
	sql, args := f.query(storedColumns)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoredEvent, error) {
		e, err := scanStored(r)
		if err != nil {
			return e, fmt.Errorf("read events: %w", err)
		}
		return e, nil
	})
}

// ErrNotFound means there is no event of the id asked for, or none that
// the caller may see.
var ErrNotFound = errors.New("event not found")

// GetEvent reads through q the event of id (a UUID), with its delivery
// columns. Its errors other than ErrNotFound are the database's, unwrapped,
// as the monitor has always shown them.
func GetEvent(ctx context.Context, q RowQuerier, id string) (StoredEvent, error) {
	e, err := scanStored(q.QueryRow(ctx, `SELECT `+storedColumns+` FROM public.event_bus WHERE id = $1::uuid`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ErrNotFound
	}
	return e, err
}

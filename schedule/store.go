package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DBTX is what the store needs of a pool, a connection or a transaction
// (the monitor's, running as its caller under row level security).
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store reads and writes public.event_schedules.
type Store struct{ db DBTX }

// NewStore returns a Store on db.
func NewStore(db DBTX) *Store { return &Store{db: db} }

// Schedule is one row of public.event_schedules.
type Schedule struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Cron           string     `json:"cron"`
	Timezone       string     `json:"timezone,omitempty"` // "" is UTC
	EventType      string     `json:"event_type"`
	AggregateType  string     `json:"aggregate_type"`
	AggregateID    string     `json:"aggregate_id"`
	Payload        rawJSON    `json:"payload"`
	Metadata       rawJSON    `json:"metadata"`
	OrganizationID string     `json:"organization_id,omitempty"`
	Enabled        bool       `json:"enabled"`
	LastRunAt      *time.Time `json:"last_run_at"`
	NextRunAt      *time.Time `json:"next_run_at"` // computed; nil when the cron or zone is bad or never comes
	Problem        string     `json:"problem,omitempty"`
	spec           *Spec      // set by plan when the cron parses
}

// rawJSON passes stored JSON through unchanged.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("{}"), nil
	}
	return r, nil
}

const scheduleColumns = `id::text, name, cron, coalesce(timezone, ''), event_type, aggregate_type, aggregate_id,
  payload::text, metadata::text, coalesce(organization_id::text, ''), enabled, last_run_at`

func scanSchedule(row pgx.Row) (Schedule, error) {
	var s Schedule
	var payload, metadata string
	err := row.Scan(&s.ID, &s.Name, &s.Cron, &s.Timezone, &s.EventType, &s.AggregateType, &s.AggregateID,
		&payload, &metadata, &s.OrganizationID, &s.Enabled, &s.LastRunAt)
	s.Payload, s.Metadata = rawJSON(payload), rawJSON(metadata)
	return s, err
}

// ErrExists means a schedule of that name exists already.
var ErrExists = errors.New("a schedule of that name exists already")

// Add stores s (its ID, LastRunAt and NextRunAt are ignored; payload and
// metadata nil are {}) and returns its id. The cron and zone are checked
// first (Parse). last_run_at starts at now: the schedule fires from its next
// tick on.
func (st *Store) Add(ctx context.Context, s Schedule) (string, error) {
	if _, err := Parse(s.Cron, s.Timezone); err != nil {
		return "", err
	}
	var tz, org any
	if s.Timezone != "" {
		tz = s.Timezone
	}
	if s.OrganizationID != "" {
		org = s.OrganizationID
	}
	payload, metadata := "{}", "{}"
	if len(s.Payload) > 0 {
		payload = string(s.Payload)
	}
	if len(s.Metadata) > 0 {
		metadata = string(s.Metadata)
	}
	var id string
	err := st.db.QueryRow(ctx, `INSERT INTO public.event_schedules
  (name, cron, timezone, event_type, aggregate_type, aggregate_id, payload, metadata, organization_id, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::uuid, $10)
RETURNING id::text`, s.Name, s.Cron, tz, s.EventType, s.AggregateType, s.AggregateID, payload, metadata, org, s.Enabled).Scan(&id)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return "", fmt.Errorf("schedule %q: %w", s.Name, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("add schedule %q: %w", s.Name, err)
	}
	return id, nil
}

// List returns the schedules the caller may see, by name, each with its
// next run as of now (NextRunAt: the missed tick still to fire, or the next
// one; Problem says why there is none).
func (st *Store) List(ctx context.Context, now time.Time) ([]Schedule, error) {
	rows, err := st.db.Query(ctx, `SELECT `+scheduleColumns+` FROM public.event_schedules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	for i := range list {
		list[i].plan(now)
	}
	return list, nil
}

// plan parses s's cron and sets NextRunAt, or Problem.
func (s *Schedule) plan(now time.Time) {
	spec, err := Parse(s.Cron, s.Timezone)
	if err != nil {
		s.Problem = err.Error()
		return
	}
	s.spec = &spec
	if !s.Enabled {
		return
	}
	var next time.Time
	if tick, ok := spec.Latest(s.after(), now); ok {
		next = tick // missed: fires at once
	} else {
		next = spec.Next(now)
	}
	if next.IsZero() {
		s.Problem = "the cron expression names no time in the next five years"
		return
	}
	s.NextRunAt = &next
}

// after is when the schedule last fired; zero when never.
func (s *Schedule) after() time.Time {
	if s.LastRunAt == nil {
		return time.Time{}
	}
	return *s.LastRunAt
}

// Remove deletes the schedule named name and reports whether there was one.
func (st *Store) Remove(ctx context.Context, name string) (bool, error) {
	tag, err := st.db.Exec(ctx, `DELETE FROM public.event_schedules WHERE name = $1`, name)
	if err != nil {
		return false, fmt.Errorf("remove schedule %q: %w", name, err)
	}
	return tag.RowsAffected() > 0, nil
}

// enabled returns the enabled schedules.
func (st *Store) enabled(ctx context.Context) ([]Schedule, error) {
	rows, err := st.db.Query(ctx, `SELECT `+scheduleColumns+` FROM public.event_schedules WHERE enabled ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	return list, nil
}

// Fired is the outcome of one tick: Fired false when it was fired already;
// EventID the event published; Refused the reason publish_event refused it.
type Fired struct {
	Fired   bool
	EventID string
	Refused string
}

// Fire publishes the event of schedule id's tick once (eventbus_fire_schedule).
func (st *Store) Fire(ctx context.Context, id string, tick time.Time) (Fired, error) {
	var f Fired
	var eventID, refused *string
	err := st.db.QueryRow(ctx, `SELECT fired, event_id::text, error FROM public.eventbus_fire_schedule($1::uuid, $2)`, id, tick).
		Scan(&f.Fired, &eventID, &refused)
	if err != nil {
		return Fired{}, fmt.Errorf("fire schedule %s at %s: %w", id, tick.Format(time.RFC3339), err)
	}
	if eventID != nil {
		f.EventID = *eventID
	}
	if refused != nil {
		f.Refused = *refused
	}
	return f, nil
}

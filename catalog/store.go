package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Version is one row of public.event_types.
type Version struct {
	EventType   string          `json:"event_type"`
	Version     int             `json:"version"`
	Schema      json.RawMessage `json:"schema"` // nil when the version has none
	Description string          `json:"description"`
	CreatedAt   time.Time       `json:"created_at"`
}

// Querier runs the catalog's statements: a pool, a connection, or a
// transaction (the monitor's, under the caller's row level security).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const listSQL = `SELECT event_type, version, schema::text, coalesce(description, ''), created_at
FROM public.event_types
WHERE $1::text IS NULL OR event_type = $1
ORDER BY event_type, version`

// List returns every version of every type, by type and version.
func List(ctx context.Context, q Querier) ([]Version, error) { return list(ctx, q, nil) }

// ListType returns the versions of one type, oldest first; none when the
// type is not registered.
func ListType(ctx context.Context, q Querier, eventType string) ([]Version, error) {
	return list(ctx, q, &eventType)
}

func list(ctx context.Context, q Querier, eventType *string) ([]Version, error) {
	rows, err := q.Query(ctx, listSQL, eventType)
	if err != nil {
		return nil, fmt.Errorf("read event types: %w", err)
	}
	versions, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Version, error) {
		var v Version
		var schema *string
		err := r.Scan(&v.EventType, &v.Version, &schema, &v.Description, &v.CreatedAt)
		if schema != nil {
			v.Schema = json.RawMessage(*schema)
		}
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("read event types: %w", err)
	}
	return versions, nil
}

// addSQL adds the next version of a type in one statement. Two concurrent
// adds of one type compute the same version; the primary key refuses the
// second, which Add runs again.
const addSQL = `INSERT INTO public.event_types (event_type, version, schema, description)
SELECT $1, coalesce(max(version), 0) + 1, $2::jsonb, nullif($3, '')
FROM public.event_types WHERE event_type = $1
RETURNING version, created_at`

// Add registers the next version of eventType with schema (nil: none), which
// must be a valid JSON Schema 2020-12 (Compile), and returns it.
func Add(ctx context.Context, q Querier, eventType string, schema []byte, description string) (Version, error) {
	if eventType == "" {
		return Version{}, errors.New("the event type is empty")
	}
	var arg *string
	if schema != nil {
		if _, err := Compile(eventType, 0, schema); err != nil {
			return Version{}, err
		}
		s := string(schema)
		arg = &s
	}
	v := Version{EventType: eventType, Schema: schema, Description: description}
	for attempt := 0; ; attempt++ {
		err := q.QueryRow(ctx, addSQL, eventType, arg, description).Scan(&v.Version, &v.CreatedAt)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && attempt < 5 {
			continue // another add took this version: take the next
		}
		if err != nil {
			return Version{}, fmt.Errorf("add a version of %s: %w", eventType, err)
		}
		return v, nil
	}
}

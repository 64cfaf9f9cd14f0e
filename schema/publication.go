package schema

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// publicationSQL describes publication $1: whether it publishes inserts,
// whether public.event_bus is among its tables (directly, FOR ALL TABLES or,
// on PostgreSQL 15+, FOR TABLES IN SCHEMA), and whether it restricts the rows
// or columns of event_bus (PostgreSQL 15+ row filters and column lists, which
// would hide events or fields from the relay; read through to_jsonb so that
// the query also parses on PostgreSQL 14, which lacks those columns). No row:
// no such publication.
const publicationSQL = `SELECT p.pubinsert,
  EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables t
          WHERE t.pubname = p.pubname AND t.schemaname = 'public' AND t.tablename = 'event_bus'),
  EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel r
          WHERE r.prpubid = p.oid AND r.prrelid = to_regclass('public.event_bus')
            AND (to_jsonb(r) ->> 'prqual' IS NOT NULL OR to_jsonb(r) ->> 'prattrs' IS NOT NULL))
FROM pg_catalog.pg_publication p
WHERE p.pubname = $1`

// EnsurePublication creates publication `name` FOR TABLE public.event_bus WITH (publish = 'insert') when missing; when it exists, checks it includes public.event_bus and publishes inserts, else returns a clear error. name is an identifier: quote it with pgx.Identifier.Sanitize.
//
// An existing publication that also publishes updates or deletes is accepted:
// the relay skips those changes, at the price of decoding them.
func EnsurePublication(ctx context.Context, conn *pgx.Conn, name string) error {
	if name == "" {
		return errors.New("publication name is empty")
	}
	for attempt := 0; ; attempt++ {
		var inserts, hasTable, filtered bool
		err := pinnedTx(ctx, conn, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, publicationSQL, name).Scan(&inserts, &hasTable, &filtered)
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			create := "CREATE PUBLICATION " + pgx.Identifier{name}.Sanitize() +
				" FOR TABLE public.event_bus WITH (publish = 'insert')"
			_, err := conn.Exec(ctx, create)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42710" && attempt == 0 {
				continue // created concurrently (another relay): check that one
			}
			if errors.As(err, &pgErr) && pgErr.Code == "42501" {
				return fmt.Errorf("create publication %q: %w (the relay's role may not create it: "+
					"run eventbus migrate as the owner of public.event_bus, with the same EVENTBUS_PUBLICATION)", name, err)
			}
			if err != nil {
				return fmt.Errorf("create publication %q: %w", name, err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("inspect publication %q: %w", name, err)
		case !hasTable:
			return fmt.Errorf("publication %q exists but does not include table public.event_bus: "+
				"ALTER PUBLICATION %s ADD TABLE public.event_bus, or configure another publication",
				name, pgx.Identifier{name}.Sanitize())
		case !inserts:
			return fmt.Errorf("publication %q exists but does not publish inserts: "+
				"ALTER PUBLICATION %s SET (publish = 'insert'), or configure another publication",
				name, pgx.Identifier{name}.Sanitize())
		case filtered:
			return fmt.Errorf("publication %q has a row filter or column list on public.event_bus, "+
				"which would hide events from the relay; drop it or configure another publication", name)
		default:
			return nil
		}
	}
}

package schema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pinSearchPathSQL makes the rest of a transaction resolve unqualified
// function, operator and type names in pg_catalog only. With public on the
// search_path, even after pg_catalog, a function or operator planted in public
// with exact argument types wins over a polymorphic built-in (format(text,
// regprocedure) over format(text, VARIADIC "any"), =(oid, regclass) over
// =(oid, oid)) and runs with the rights of whoever runs the statement: here
// the migrating superuser, or the relay at start. See the package comment.
const pinSearchPathSQL = "SET LOCAL search_path = " + SafeSearchPath

// SafeSearchPath is the search_path of every connection eventbus opens (set
// as a connection parameter by the commands) and of its definer functions:
// every statement of eventbus qualifies the relations and functions of its
// own (public.event_bus, auth.uid()), so nothing needs public on the path,
// and nothing planted there is ever called by the relay's role.
const SafeSearchPath = "pg_catalog, pg_temp"

// beginner is what pinnedTx needs of a connection: *pgx.Conn, *pgxpool.Pool
// and pgx.Tx (a savepoint) all begin transactions.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// pinnedTx runs fn in a transaction of db whose search_path is pinned to
// pg_catalog, pg_temp, and commits it when fn returns nil. fn's error is
// returned as it is.
func pinnedTx(ctx context.Context, db beginner, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, pinSearchPathSQL); err != nil {
			return fmt.Errorf("pin search_path: %w", err)
		}
		return fn(tx)
	})
}

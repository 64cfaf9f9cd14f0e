// Package testdb gives a test a fresh database with eventbus's migrations
// applied. It is apart from testenv because it imports schema, whose own
// tests use testenv.
package testdb

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
	"github.com/eventbus/eventbus/schema"
)

// Migrated creates a database for the test (testenv.Postgres), applies every
// migration and returns its URL.
func Migrated(t testing.TB) (url string) {
	t.Helper()
	url = testenv.Postgres(t)
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	_, err = schema.Migrate(t.Context(), conn, nil)
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
	return url
}

// MigratedPool is Migrated's database behind a pool closed when the test ends.
func MigratedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), Migrated(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

package schema

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// newDB creates an empty database for one test (on the package's throwaway
// cluster, see internal/testenv) and drops it when the test ends.
func newDB(t *testing.T) string {
	t.Helper()
	return testenv.Postgres(t)
}

// connect opens a connection closed when the test ends.
func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err, "connect to %s", dbURL)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// migrated returns a connection to a new database with every migration
// applied, connected as the superuser that owns everything in it.
func migrated(t *testing.T) *pgx.Conn {
	t.Helper()
	conn := connect(t, newDB(t))
	_, err := Migrate(t.Context(), conn, testLogger(t))
	require.NoError(t, err, "migrate")
	return conn
}

// testLogger routes log lines to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// asRole runs fn in a transaction as role, with the JWT claims of user sub
// when sub is not empty (as PostgREST does), and rolls the transaction back.
// It returns fn's error.
func asRole(t *testing.T, conn *pgx.Conn, role, sub string, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize())
	require.NoError(t, err, "set role %s", role)
	if sub != "" {
		_, err = tx.Exec(ctx, "SELECT set_config('request.jwt.claims', $1, true)", `{"sub":"`+sub+`","role":"`+role+`"}`)
		require.NoError(t, err, "set claims")
	}
	return fn(tx)
}

// querier is what *pgx.Conn and pgx.Tx have in common for reading.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgCode returns the SQLSTATE of err, or "" when err is no Postgres error.
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// newUUID returns a random UUID as text.
func newUUID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

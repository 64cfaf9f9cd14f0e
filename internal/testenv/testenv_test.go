package testenv_test

import (
	"bytes"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestUniqueName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	seen := map[string]bool{}
	for _, prefix := range []string{"slot", "", "9lives", "Pub-Lication.Name", strings.Repeat("x", 100)} {
		for range 100 {
			name := testenv.UniqueName(t, prefix)
			require.Regexp(t, valid, name)
			require.LessOrEqual(t, len(name), 40, name)
			require.NotContains(t, name, "__", name)
			require.False(t, seen[name], "duplicate %s", name)
			seen[name] = true
		}
	}
	require.True(t, strings.HasPrefix(testenv.UniqueName(t, "slot"), "slot_uniquename_"))

	t.Run("a very long sub-test name that goes on and on and on", func(t *testing.T) {
		name := testenv.UniqueName(t, "stream")
		require.Regexp(t, valid, name)
		require.LessOrEqual(t, len(name), 40, name)
	})
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	var dbName string
	t.Run("database", func(t *testing.T) {
		dbURL := testenv.Postgres(t)
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		dbName = strings.TrimPrefix(u.Path, "/")

		conn, err := pgx.Connect(t.Context(), dbURL)
		require.NoError(t, err)
		// Left open on purpose: the cleanup disconnects it.
		var current, walLevel string
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_database(), current_setting('wal_level')").Scan(&current, &walLevel))
		require.Equal(t, dbName, current)
		require.Equal(t, "logical", walLevel)
		_, err = conn.Exec(t.Context(), "SELECT pg_create_logical_replication_slot('left_behind', 'pgoutput')")
		require.NoError(t, err)
	})

	// The sub-test's cleanup dropped its database and slot.
	other := testenv.Postgres(t)
	conn, err := pgx.Connect(t.Context(), other)
	require.NoError(t, err)
	defer conn.Close(t.Context())
	var dbs, slots int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", dbName).Scan(&dbs))
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'left_behind'").Scan(&slots))
	require.Zero(t, dbs, "database dropped")
	require.Zero(t, slots, "slot dropped")
}

func TestPostgresOnExistingServer(t *testing.T) {
	pg := testenv.NewPostgres(t)
	t.Setenv(testenv.DatabaseURLEnv, pg.URL("postgres"))

	dbURL := testenv.Postgres(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(pg.Port()), u.Port(), "%s is on the server of %s", dbURL, testenv.DatabaseURLEnv)
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
}

func TestNATSURL(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		nc, err := nats.Connect(testenv.NATSURL(t))
		require.NoError(t, err)
		nc.Close()
	})
	t.Run("from environment", func(t *testing.T) {
		t.Setenv(testenv.NATSURLEnv, "nats://example.invalid:4222")
		require.Equal(t, "nats://example.invalid:4222", testenv.NATSURL(t))
	})
}

// The proxy delays what the server sends, not what the client sends, and
// passes every byte in order.
func TestLatencyProxyDelaysServerBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c) // echo
	}()
	p := testenv.StartLatencyProxy(t, ln.Addr().String(), 100*time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	msg := bytes.Repeat([]byte("0123456789"), 10000)
	started := time.Now()
	go func() { _, _ = c.Write(msg) }()
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(started), 100*time.Millisecond, "the echo came back through the delay")
	assert.Equal(t, msg, got)
}

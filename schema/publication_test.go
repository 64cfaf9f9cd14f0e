package schema

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnsurePublication(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	const name = `Event "Bus"-1` // needs quoting

	require.NoError(t, EnsurePublication(ctx, conn, name))
	require.NoError(t, EnsurePublication(ctx, conn, name), "idempotent")

	var insert, update, del, truncate bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate
		FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&insert, &update, &del, &truncate))
	assert.Equal(t, []bool{true, false, false, false}, []bool{insert, update, del, truncate}, "inserts only")

	rows, err := conn.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1`, name)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"public.event_bus"}, tables)
}

func TestEnsurePublicationAcceptsWiderPublications(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	_, err := conn.Exec(t.Context(), `CREATE PUBLICATION everything FOR ALL TABLES;
		CREATE PUBLICATION with_updates FOR TABLE public.event_bus, public.leads`)
	require.NoError(t, err)
	assert.NoError(t, EnsurePublication(t.Context(), conn, "everything"))
	assert.NoError(t, EnsurePublication(t.Context(), conn, "with_updates"))
}

func TestEnsurePublicationRefusesUnfitPublications(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	var version int
	require.NoError(t, conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version))

	cases := map[string]struct{ create, wantErr string }{
		"without_event_bus": {
			`CREATE PUBLICATION without_event_bus FOR TABLE public.leads`,
			`publication "without_event_bus" exists but does not include table public.event_bus`,
		},
		"without_inserts": {
			`CREATE PUBLICATION without_inserts FOR TABLE public.event_bus WITH (publish = 'update')`,
			`publication "without_inserts" exists but does not publish inserts`,
		},
	}
	if version >= 150000 {
		cases["row_filter"] = struct{ create, wantErr string }{
			`CREATE PUBLICATION row_filter FOR TABLE public.event_bus WHERE (event_type <> 'x') WITH (publish = 'insert')`,
			`has a row filter or column list`,
		}
		cases["column_list"] = struct{ create, wantErr string }{
			`CREATE PUBLICATION column_list FOR TABLE public.event_bus (id, event_type) WITH (publish = 'insert')`,
			`has a row filter or column list`,
		}
	}
	for name, c := range cases {
		_, err := conn.Exec(ctx, c.create)
		require.NoError(t, err, name)
		assert.ErrorContains(t, EnsurePublication(ctx, conn, name), c.wantErr, name)
	}
	assert.Error(t, EnsurePublication(ctx, conn, ""), "empty name")
}

// The redrive messages can only be seen through a logical replication slot,
// which needs wal_level = logical.
func TestProcessPendingEventsEmitsRedriveMessages(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	ctx := t.Context()
	var walLevel string
	require.NoError(t, conn.QueryRow(ctx, `SHOW wal_level`).Scan(&walLevel))
	if walLevel != "logical" {
		t.Skipf("wal_level is %s, not logical: no logical decoding", walLevel)
	}

	require.NoError(t, EnsurePublication(ctx, conn, "eventbus"))
	slot := "eventbus_schema_" + strings.ReplaceAll(newUUID(t), "-", "")
	_, err := conn.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot) })

	_, err = conn.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status, created_at)
		SELECT 'test.event', 'test', g::text, 'failed', now() - interval '1 hour' - g * interval '1 second'
		FROM generate_series(1, 1500) g`)
	require.NoError(t, err)
	rows, err := conn.Query(ctx, `SELECT id::text FROM public.event_bus ORDER BY created_at, id`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)

	// A rolled-back call emits nothing.
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT public.process_pending_events(2000)`)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT public.process_pending_events(2000)`).Scan(&n))
	require.Equal(t, 1500, n)

	messages := redriveMessages(t, conn, slot)
	require.Len(t, messages, 2, "1500 ids in messages of at most 1000")
	first, second := strings.Split(messages[0], ","), strings.Split(messages[1], ",")
	assert.Len(t, first, 1000)
	assert.Len(t, second, 500)
	assert.Equal(t, ids, append(first, second...), "every id once, oldest first")
}

// redriveMessages reads the slot's changes as the relay does (pgoutput with
// messages) and returns the content of the eventbus.redrive messages.
func redriveMessages(t *testing.T, conn *pgx.Conn, slot string) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL,
		'proto_version', '1', 'publication_names', 'eventbus', 'messages', 'true')`, slot)
	require.NoError(t, err)
	changes, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)

	var contents []string
	for _, data := range changes {
		if len(data) == 0 || data[0] != 'M' {
			continue
		}
		// 'M', flags (1 = transactional), LSN, prefix\0, content length, content.
		require.Greater(t, len(data), 10)
		assert.Equal(t, byte(1), data[1], "transactional message")
		rest := data[10:]
		end := bytes.IndexByte(rest, 0)
		require.GreaterOrEqual(t, end, 0)
		prefix := string(rest[:end])
		rest = rest[end+1:]
		size := binary.BigEndian.Uint32(rest)
		content := rest[4 : 4+size]
		if prefix == "eventbus.redrive" {
			contents = append(contents, string(content))
		}
	}
	return contents
}

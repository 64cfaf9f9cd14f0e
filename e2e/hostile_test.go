package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// insertDirect inserts an event_bus row as the owner, bypassing
// publish_event's validation, as a service-role client or a hand-written
// migration can; it returns the row's id.
func (e *env) insertDirect(ctx context.Context, eventType, aggregateID, payload, status string) string {
	e.t.Helper()
	var id string
	require.NoError(e.t, e.db.QueryRow(ctx, `INSERT INTO public.event_bus
		(event_type, aggregate_type, aggregate_id, payload, metadata, status)
		VALUES ($1, 'test', $2, $3::jsonb, '{"source":"e2e"}', $4) RETURNING id::text`,
		eventType, aggregateID, payload, status).Scan(&id))
	return id
}

// rawMessage is a message of the stream as received, its body not parsed:
// some hostile bodies are valid JSON that Go's encoding/json refuses (nesting
// deeper than 10000).
type rawMessage struct {
	Subject string
	Header  nats.Header
	Data    []byte
}

// rawMessages returns the stream's messages by Nats-Msg-Id.
func (e *env) rawMessages() map[string]rawMessage {
	e.t.Helper()
	msgs := map[string]rawMessage{}
	e.eachStreamMessage(func(m jetstream.Msg) {
		msgs[m.Headers().Get(jetstream.MsgIDHeader)] = rawMessage{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
	})
	return msgs
}

// storedRow is an event as Postgres stores it, JSON columns as their text.
type storedRow struct {
	EventType, AggregateType, AggregateID string
	Payload, Metadata                     string
	Status                                string
	ErrorMessage                          *string
}

func (e *env) storedRow(ctx context.Context, id string) storedRow {
	e.t.Helper()
	var r storedRow
	require.NoError(e.t, e.db.QueryRow(ctx, `SELECT event_type, aggregate_type, aggregate_id, payload::text, metadata::text,
		status, error_message FROM public.event_bus WHERE id = $1`, id).
		Scan(&r.EventType, &r.AggregateType, &r.AggregateID, &r.Payload, &r.Metadata, &r.Status, &r.ErrorMessage))
	return r
}

// requireDelivered requires that event id is processed and its message
// carries the row intact: subject, headers, and payload and metadata byte for
// byte as Postgres renders them (the relay passes JSON through unparsed).
func (e *env) requireDelivered(ctx context.Context, msgs map[string]rawMessage, id string) {
	e.t.Helper()
	row := e.storedRow(ctx, id)
	require.Equal(e.t, "processed", row.Status, "event %s (%.60q) processed", id, row.EventType)
	m, ok := msgs[id]
	require.True(e.t, ok, "event %s in the stream", id)
	assert.Equal(e.t, "events."+row.EventType, m.Subject)
	assert.Equal(e.t, row.EventType, m.Header.Get("Eventbus-Event-Type"))
	assert.Equal(e.t, row.AggregateID, m.Header.Get("Eventbus-Aggregate-Id"))
	payload, metadata := `"payload":`+row.Payload, `"metadata":`+row.Metadata
	assert.True(e.t, strings.Contains(string(m.Data), payload), "payload of %s passed through byte for byte", id)
	assert.True(e.t, strings.Contains(string(m.Data), metadata), "metadata of %s passed through byte for byte", id)
	assert.Contains(e.t, string(m.Data), `"id":"`+id+`"`)
}

// hostileCase is one hostile event: how it is stored, and what must become of it.
type hostileCase struct {
	name   string
	insert func(ctx context.Context, e *env) string // returns the event's id
	// failedWith is empty when the event must be delivered intact, else a
	// part of the error_message the relay records when it marks it failed.
	failedWith string
	check      func(t *testing.T, m rawMessage) // optional, for delivered events
}

func viaPublishEvent(eventType, aggregateID, payload string) func(context.Context, *env) string {
	return func(ctx context.Context, e *env) string { return e.publish(ctx, eventType, aggregateID, payload) }
}

func direct(eventType, aggregateID, payload string) func(context.Context, *env) string {
	return func(ctx context.Context, e *env) string {
		return e.insertDirect(ctx, eventType, aggregateID, payload, "pending")
	}
}

// deepArrays is a payload object holding arrays nested depth levels deep.
func deepArrays(depth int) string {
	return `{"deep":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}

// Hostile events reach the running relay, each stored by publish_event or,
// bypassing its validation, inserted directly. Each is either delivered
// intact or marked failed with a readable error, and the relay keeps going:
// the event after all of them is delivered.
func TestHostileEventsAreDeliveredIntactOrFailed(t *testing.T) {
	t.Parallel()
	const maxPayload = 256 * 1024
	e := setup(t, withMaxPayload(maxPayload), withEnv("EVENTBUS_MAX_RETRIES=2"))
	ctx := t.Context()
	p := e.startRelay()
	e.waitSlotActive(true)

	unicode := `{"emoji": "🎉👩‍👩‍👧‍👦🏳️‍🌈", "rtl": "مرحبا بالعالم שלום", "override": "abc\u202edef",
		"combining": "e\u0301 a\u0308\u0308\u0308 Z̤͔ͧ̑̓", "bom": "\ufeff", "nbsp": "a\u00a0b", "linesep": "a\u2028b",
		"surrogates": "\ud83d\ude00", "😀 key": {"ключ": "значение"}, "escaped nul": "\\u0000", "controls": "\t\n\r\b\f\u001f",
		"quotes": "\"<script>alert(1)</script>\"", "backslash": "\\"}`

	cases := []hostileCase{
		{name: "unicode payload", insert: viaPublishEvent("unicode.payload", "u-1", unicode),
			check: func(t *testing.T, m rawMessage) {
				var b struct{ Payload map[string]any }
				require.NoError(t, json.Unmarshal(m.Data, &b))
				var want map[string]any
				require.NoError(t, json.Unmarshal([]byte(unicode), &want))
				assert.Equal(t, want, b.Payload, "the payload decodes to what was published")
			}},
		{name: "unicode aggregate id", insert: viaPublishEvent("unicode.aggregate", "заказ-🎉-مرحبا-e\u0301", `{}`),
			check: func(t *testing.T, m rawMessage) {
				assert.Equal(t, "заказ-🎉-مرحبا-e\u0301", m.Header.Get("Eventbus-Aggregate-Id"))
			}},
		{name: "big numbers", insert: viaPublishEvent("numbers.big", "n-1",
			`{"huge": 1e400, "long": 123456789012345678901234567890.123456789, "tiny": -1e-300, "neg0": -0}`)},
		{name: "payload under max_payload", insert: viaPublishEvent("size.under", "s-1",
			`{"blob": "`+strings.Repeat("é", 100*1024)+`"}`)},
		{name: "payload over max_payload", insert: viaPublishEvent("size.over", "s-2",
			`{"blob": "`+strings.Repeat("x", 300*1024)+`"}`), failedWith: "max_payload"},
		{name: "8 MiB payload", insert: viaPublishEvent("size.huge", "s-3",
			`{"blob": "`+strings.Repeat("y", 8<<20)+`"}`), failedWith: "max_payload"},
		{name: "300 KiB aggregate id (a header)", insert: viaPublishEvent("size.header", strings.Repeat("h", 300*1024), `{}`),
			failedWith: "max_payload"},
		{name: "nested 1000 deep", insert: viaPublishEvent("nested.thousand", "d-1", deepArrays(1000))},
		{name: "nested 10000 deep", insert: viaPublishEvent("nested.tenthousand", "d-2", deepArrays(10000)),
			check: func(t *testing.T, m rawMessage) {
				// Delivered intact; Go's encoding/json (like other parsers)
				// refuses nesting this deep, so consumers may not parse it.
				assert.Error(t, json.Unmarshal(m.Data, new(any)), "encoding/json's depth limit")
			}},
		{name: "unicode event type (direct)", insert: direct("заказ.создан", "e-1", `{}`)},
		{name: "emoji event type (direct)", insert: direct("lead.🎉", "e-2", `{}`)},
		{name: "RTL override in event type (direct)", insert: direct("lead.\u202ecreated", "e-3", `{}`)},
		{name: "space in event type (direct)", insert: direct("lead created", "b-1", `{}`), failedWith: "subject"},
		{name: "wildcard * (direct)", insert: direct("lead.*", "b-2", `{}`), failedWith: "subject"},
		{name: "wildcard > (direct)", insert: direct("lead.>", "b-3", `{}`), failedWith: "subject"},
		{name: "empty token (direct)", insert: direct("lead..created", "b-4", `{}`), failedWith: "subject"},
		{name: "empty event type (direct)", insert: direct("", "b-5", `{}`), failedWith: "subject"},
		{name: "line break in event type (direct)", insert: direct("lead\r\nPUB x 1", "b-6", `{}`), failedWith: "subject"},
		{name: "tab in event type (direct)", insert: direct("lead\tcreated", "b-7", `{}`), failedWith: "subject"},
		{name: "line break in aggregate id (direct)", insert: direct("lead.created", "a\r\nNats-Msg-Id: forged", `{}`),
			failedWith: "line break"},
		{name: "payload not an object (direct)", insert: direct("payload.array", "j-1", `[1, "two", null]`)},
		{name: "JSON null payload (direct)", insert: direct("payload.null", "j-2", `null`)},
	}

	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = c.insert(ctx, e)
	}
	after := e.publish(ctx, "after.hostile", "z", `{"still": "flowing"}`)

	failed := 0
	for _, c := range cases {
		if c.failedWith != "" {
			failed++
		}
	}
	e.waitStatuses(map[string]int{"processed": len(cases) - failed + 1, "failed": failed}, 120*time.Second)
	msgs := e.rawMessages()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.failedWith != "" {
				e.requireFailed(ctx, ids[i], 2, c.failedWith)
				_, inStream := msgs[ids[i]]
				assert.False(t, inStream, "a failed event is not in the stream")
				return
			}
			e.requireDelivered(ctx, msgs, ids[i])
			if c.check != nil {
				c.check(t, msgs[ids[i]])
			}
		})
	}
	e.requireDelivered(ctx, msgs, after)
	select {
	case <-p.done:
		t.Fatalf("the relay exited: %v", p.err)
	default:
	}
	assert.NotContains(t, p.out.String(), "panic")
}

// What Postgres itself refuses never reaches the relay: no row is stored.
func TestHostileInputRefusedByPostgres(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()

	for _, c := range []struct {
		name, sql string
		args      []any
		code      string // SQLSTATE
		message   string
	}{
		{"NUL escape in jsonb", `SELECT public.publish_event('x.y', 'x', '1', '{"a": "\u0000"}'::jsonb)`, nil,
			"22P05", "unsupported Unicode escape sequence"},
		{"NUL escape through json", `SELECT public.publish_event('x.y', 'x', '1', '{"a": "\u0000"}'::json::jsonb)`, nil,
			"22P05", "unsupported Unicode escape sequence"},
		{"lone surrogate escape", `SELECT public.publish_event('x.y', 'x', '1', '{"a": "\ud800"}'::jsonb)`, nil,
			"22P02", "Unicode low surrogate must follow a high surrogate"},
		{"nested 100000 deep", `SELECT public.publish_event('x.y', 'x', '1', $1::jsonb)`, []any{deepArrays(100000)},
			"54001", "stack depth limit exceeded"},
		{"NUL character in text", `SELECT public.publish_event('x' || chr(0), 'x', '1')`, nil,
			"54000", "null character not permitted"},
		{"invalid UTF-8 through convert_from", `SELECT public.publish_event('x.y', 'x', convert_from('\xff'::bytea, 'UTF8'))`, nil,
			"22021", `invalid byte sequence for encoding "UTF8": 0xff`},
		{"UTF-8 surrogate bytes", `SELECT public.publish_event('x.y', 'x', convert_from('\xeda080'::bytea, 'UTF8'))`, nil,
			"22021", `invalid byte sequence for encoding "UTF8": 0xed 0xa0 0x80`},
		{"overlong NUL (modified UTF-8)", `SELECT public.publish_event('x.y', 'x', convert_from('\xc080'::bytea, 'UTF8'))`, nil,
			"22021", `invalid byte sequence for encoding "UTF8": 0xc0 0x80`},
		{"SQL_ASCII source", `SELECT public.publish_event('x.y', 'x', convert_from('\xff'::bytea, 'SQL_ASCII'))`, nil,
			"22021", `invalid byte sequence for encoding "UTF8": 0xff`},
		{"invalid UTF-8 parameter", `SELECT public.publish_event('x.y', 'x', $1)`, []any{"a\xffb"},
			"22021", `invalid byte sequence for encoding "UTF8": 0xff`},
		{"invalid UTF-8 in a direct insert", `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id) VALUES ($1, 'x', '1')`,
			[]any{"lead.\xc3\x28"}, "22021", `invalid byte sequence for encoding "UTF8": 0xc3 0x28`},
		{"invalid UTF-8 in a direct jsonb", `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload) VALUES ('x.y', 'x', '1', $1::jsonb)`,
			[]any{"{\"a\": \"\xff\"}"}, "22021", `invalid byte sequence for encoding "UTF8": 0xff`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.db.Exec(ctx, c.sql, c.args...)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			assert.Equal(t, c.code, pgErr.Code, "%v", err)
			assert.Contains(t, pgErr.Message+" "+pgErr.Detail, c.message)
		})
	}
	assert.Empty(t, e.statusCounts(), "nothing was stored")

	// Latin-1 bytes converted on the way in are valid text: stored (and
	// delivered) as the characters they stand for.
	var id string
	require.NoError(t, e.db.QueryRow(ctx,
		`SELECT public.publish_event('x.y', 'x', convert_from('\xff'::bytea, 'LATIN1'))::text`).Scan(&id))
	assert.Equal(t, "ÿ", e.storedRow(ctx, id).AggregateID)
}

// An event_type longer than a NATS protocol line may be (max_control_line,
// 4 KiB by default), inserted directly: publish_event refuses more than 255
// characters.
func TestHostileLongEventType(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_MAX_RETRIES=2"))
	ctx := t.Context()
	p := e.startRelay()
	e.waitSlotActive(true)

	long := e.insertDirect(ctx, "long."+strings.Repeat("t", 5000), "l-1", `{}`, "pending")
	after := e.publish(ctx, "after.long", "z", `{}`)
	e.waitStatuses(map[string]int{"processed": 1, "failed": 1}, 60*time.Second)
	e.requireFailed(ctx, long, 2, "subject")
	e.requireDelivered(ctx, e.rawMessages(), after)
	select {
	case <-p.done:
		t.Fatalf("the relay exited: %v", p.err)
	default:
	}
}

// A malformed redrive order (a logical message with the relay's prefix whose
// content is not a list of event ids), written by a role that may still call
// pg_logical_emit_message: the relay must not stall on it.
func TestHostileRedriveMessage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	p := e.startRelay()
	e.waitSlotActive(true)

	_, err := e.db.Exec(ctx, `SELECT pg_logical_emit_message(true, 'eventbus.redrive', 'not-a-uuid,'' OR true --')`)
	require.NoError(t, err)
	after := e.publish(ctx, "after.redrive", "z", `{}`)
	e.waitStatuses(map[string]int{"processed": 1}, 60*time.Second)
	e.requireDelivered(ctx, e.rawMessages(), after)
	select {
	case <-p.done:
		t.Fatalf("the relay exited: %v", p.err)
	default:
	}
}

// `eventbus publish` goes through publish_event: its validation errors reach
// the operator as one line naming the argument.
func TestCLIPublishRefusesInvalidInput(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--event-type", "lead created", "--aggregate-type", "lead", "--aggregate-id", "1"},
			`publish_event: p_event_type "lead created" is not a valid event type: it contains a space`},
		{[]string{"--event-type", "lead.>", "--aggregate-type", "lead", "--aggregate-id", "1"},
			`publish_event: p_event_type "lead.>" is not a valid event type: it contains ">"`},
		{[]string{"--event-type", "lead.created", "--aggregate-type", "lead", "--aggregate-id", " "},
			"publish_event: p_aggregate_id is empty"},
		{[]string{"--event-type", "lead.created", "--aggregate-type", "lead", "--aggregate-id", "1", "--payload", "[1,2]"},
			"publish_event: p_payload must be a JSON object, got array"},
	} {
		r := e.cli(append([]string{"publish"}, c.args...)...)
		assert.NotEqual(t, 0, r.code, "%s", r)
		requireOneLine(t, r.stderr, c.want)
		assert.Empty(t, r.stdout)
	}
	assert.Empty(t, e.statusCounts(), "nothing stored")
}

// A role that may create in public plants a function that a statement of
// the relay could call: public.unnest(uuid[]) is an exact match, so it wins
// over the polymorphic built-in wherever public is on the search_path, and it
// would run with the relay's rights (here a superuser's). The relay's
// connections resolve names in pg_catalog only (schema.SafeSearchPath), so it
// never runs. The status write that looks rows up (rows deleted before they
// were marked) is where the relay calls unnest. Today that call has two
// arguments, which PostgreSQL expands to pg_catalog.unnest itself, so this
// test guards the statements to come: one that calls a plantable function
// with the connection's pin removed fails it.
func TestRelayNeverRunsFunctionsPlantedInPublic(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	attacker := testenv.UniqueName(t, "attacker")
	_, err := e.db.Exec(ctx, `CREATE ROLE `+attacker)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = e.db.Exec(context.Background(), `DROP OWNED BY `+attacker+`; DROP ROLE `+attacker)
	})
	_, err = e.db.Exec(ctx, `GRANT CREATE ON SCHEMA public TO `+attacker)
	require.NoError(t, err)
	conn, err := e.db.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SET ROLE `+attacker+`;
		CREATE TABLE public.loot (who text);
		GRANT INSERT ON public.loot TO PUBLIC;
		CREATE FUNCTION public.unnest(a uuid[]) RETURNS SETOF uuid LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO public.loot VALUES (current_user);
			RETURN QUERY SELECT pg_catalog.unnest(a);
		END $$;
		RESET ROLE`)
	conn.Release()
	require.NoError(t, err)

	p := e.startRelay()
	e.waitSlotActive(true)
	require.Equal(t, 0, p.stop())
	_, err = e.db.Exec(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id)
		SELECT 'test.deleted', 'test', g::text FROM generate_series(1, 10) AS g`)
	require.NoError(t, err)
	_, err = e.db.Exec(ctx, `DELETE FROM public.event_bus`)
	require.NoError(t, err)
	p = e.startRelay()
	e.publish(ctx, "test.after", "a-1", `{}`)
	e.waitProcessed(1, 30*time.Second)
	eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(p.out.String(), "acked events not found in event_bus"), "the relay looked the deleted rows up"
	})

	var ran int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM public.loot`).Scan(&ran))
	assert.Zero(t, ran, "the planted function ran as the relay's role")
	require.Equal(t, 0, p.stop())
}

// A redrive message may name many ids (written by hand, or by another tool):
// the relay loads them a chunk at a time and hands back every pending one,
// across chunk boundaries, each once.
func TestRedriveMessageOfManyIds(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()
	e.waitSlotActive(true)

	const n = 2500 // the relay loads 1,000 at a time
	rows, err := e.db.Query(ctx, `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, status)
		SELECT 'many.redriven', 'test', g::text, 'processed' FROM generate_series(1, $1::int) g
		ORDER BY g RETURNING id::text`, n)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, ids, n)
	_, err = e.db.Exec(ctx, `UPDATE public.event_bus SET status = 'pending' WHERE event_type = 'many.redriven'`)
	require.NoError(t, err)
	_, err = e.db.Exec(ctx, `SELECT pg_logical_emit_message(true, 'eventbus.redrive', array_to_string($1::text[], ','))`, ids)
	require.NoError(t, err)

	e.waitStatuses(map[string]int{"processed": n}, 2*time.Minute)
	e.assertStreamHoldsOnce(ids)
}

package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/internal/testenv"
	"github.com/eventbus/eventbus/internal/testenv/testdb"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func loaded(t *testing.T, pool *pgxpool.Pool) *Catalog {
	t.Helper()
	cat := New()
	require.NoError(t, Load(t.Context(), pool, cat, testenv.Logger(t)))
	return cat
}

// The seeded schemas accept what the lead triggers publish, nulls included.
func TestSeededLeadSchemasAcceptTheTriggersPayloads(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, `INSERT INTO public.leads (first_name, last_name, phone, status_id, lead_source_id, organization_id)
		VALUES ('Ada', 'Lovelace', '+44', gen_random_uuid(), gen_random_uuid(), gen_random_uuid()), (NULL, NULL, NULL, NULL, NULL, NULL)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE public.leads SET status_id = CASE WHEN status_id IS NULL THEN gen_random_uuid() END`)
	require.NoError(t, err)

	cat := loaded(t, pool)
	rows, err := pool.Query(ctx, `SELECT id::text, event_type, payload::text, metadata::text FROM public.event_bus ORDER BY created_at`)
	require.NoError(t, err)
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (event.Event, error) {
		var e event.Event
		return e, r.Scan(&e.ID, &e.EventType, &e.Payload, &e.Metadata)
	})
	require.NoError(t, err)
	count := map[string]int{}
	for _, e := range events {
		version, err := cat.Check(&e)
		require.NoError(t, err, "%s %s", e.EventType, e.Payload)
		assert.Equal(t, "1", version, e.EventType)
		count[e.EventType]++
	}
	assert.Equal(t, map[string]int{"lead.created": 2, "lead.status_updated": 2}, count)
}

func leadCreated(payload, metadata string) *event.Event {
	return &event.Event{ID: "6f0c1a52-0000-4000-8000-000000000001", EventType: "lead.created", AggregateType: "lead",
		AggregateID: "1", Payload: []byte(payload), Metadata: []byte(metadata)}
}

const validLead = `{"lead_id": "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d", "first_name": "John", "last_name": "Doe",
	"phone": "+79991234567", "status_id": null, "lead_source_id": "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3e",
	"organization_id": "11111111-1111-1111-1111-111111111111"}`

func TestCheckNamesThePathAndTheRule(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	_, err := Add(t.Context(), pool, "contact.created", []byte(`{"type": "object", "required": ["phone"],
		"properties": {"id": {"type": "string", "format": "uuid"}}}`), "strict")
	require.NoError(t, err)
	cat := loaded(t, pool)
	for _, tc := range []struct{ payload, want string }{
		{`{"id": "5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d"}`, "at $.phone: required: missing property 'phone'"},
		{`{"id": "not-a-uuid", "phone": "1"}`, "at $.id: format: 'not-a-uuid' is not valid uuid"},
	} {
		e := leadCreated(tc.payload, `{}`)
		e.EventType = "contact.created"
		_, err := cat.Check(e)
		var invalid *InvalidError
		require.ErrorAs(t, err, &invalid, tc.payload)
		assert.Contains(t, err.Error(), tc.want)
		assert.Contains(t, err.Error(), "contact.created version 1")
	}
	for _, tc := range []struct{ payload, want string }{
		{strings.Replace(validLead, `"first_name": "John"`, `"first_name": 42`, 1), "at $.first_name: type: got number, want null or string"},
		{strings.Replace(validLead, `"5f1c7a52-1d9e-4b7a-9a43-0a4c8b1b2c3d"`, `17`, 1), "at $.lead_id: type: got number, want string"},
		{`[1]`, "at $: type: got array, want object"},
		{`{"lead_id": `, "the payload is not valid JSON"},
	} {
		_, err := cat.Check(leadCreated(tc.payload, `{"trigger": "insert"}`))
		var invalid *InvalidError
		require.ErrorAs(t, err, &invalid, tc.payload)
		assert.Contains(t, err.Error(), tc.want)
		assert.Contains(t, err.Error(), "lead.created version 1")
		assert.NotContains(t, err.Error(), "\n")
	}
	version, err := cat.Check(leadCreated(validLead, `{}`))
	require.NoError(t, err)
	assert.Equal(t, "1", version)
	version, err = cat.Check(leadCreated(`{"name": "a payload of its own"}`, `{}`))
	require.NoError(t, err, "the seeded lead schemas require no key")
	assert.Equal(t, "1", version)
}

func TestVersionFromMetadataOrCurrent(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	v2, err := Add(t.Context(), pool, "lead.created", []byte(`{"type": "object", "required": ["id"]}`), "v2: one id")
	require.NoError(t, err)
	assert.Equal(t, 2, v2.Version)
	cat := loaded(t, pool)

	version, err := cat.Check(leadCreated(`{"id": 1}`, `{"trigger": "insert"}`))
	require.NoError(t, err)
	assert.Equal(t, "2", version, "no metadata.version: the current version")

	version, err = cat.Check(leadCreated(validLead, `{"version": 1}`))
	require.NoError(t, err)
	assert.Equal(t, "1", version, "metadata.version names version 1")
	_, err = cat.Check(leadCreated(`{"id": 1, "lead_id": 1}`, `{"version": 1}`))
	assert.ErrorContains(t, err, "version 1: at $.lead_id: type", "checked against the version named")

	_, err = cat.Check(leadCreated(validLead, `{"version": 7}`))
	assert.EqualError(t, err, "metadata.version 7 is not a registered version of lead.created (registered: 1, 2)")
	version, err = cat.Check(leadCreated(`{"id": 1}`, `{"version": "1"}`))
	require.NoError(t, err, "a string is no version: the current one applies")
	assert.Equal(t, "2", version)
	version, err = cat.Check(leadCreated(validLead, `{"version": 1.0}`))
	require.NoError(t, err, "1.0 is the integer 1")
	assert.Equal(t, "1", version)
	_, err = cat.Check(leadCreated(validLead, `{"version": -3}`))
	assert.EqualError(t, err, "metadata.version -3 is not a registered version of lead.created (registered: 1, 2)")
	version, err = cat.Check(leadCreated(`{"id": 1}`, `{"client": {"version": "x"}}`))
	require.NoError(t, err, "a nested version is not metadata.version")
	assert.Equal(t, "2", version)

	version, err = cat.Check(&event.Event{EventType: "order.shipped", Payload: []byte(`not even JSON`), Metadata: []byte(`{"version": 9}`)})
	require.NoError(t, err, "an unregistered type is not checked")
	assert.Empty(t, version, "and carries no version")
}

func TestAddTakesTheNextVersionAndRefusesBadSchemas(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	ctx := t.Context()
	v, err := Add(ctx, pool, "order.shipped", nil, "")
	require.NoError(t, err)
	assert.Equal(t, 1, v.Version)

	// Concurrent adds get distinct versions.
	var wg sync.WaitGroup
	got := make([]int, 4)
	for i := range got {
		wg.Go(func() {
			v, err := Add(ctx, pool, "order.shipped", []byte(`{"type": "object"}`), fmt.Sprint("v", i))
			assert.NoError(t, err)
			got[i] = v.Version
		})
	}
	wg.Wait()
	assert.ElementsMatch(t, []int{2, 3, 4, 5}, got)

	for schema, want := range map[string]string{
		`{"type": "objekt"}`:             "not a valid JSON Schema 2020-12: at $.type",
		`{"type": `:                      "the schema is not valid JSON",
		`{"$ref": "file:///etc/passwd"}`: "external references are not loaded",
		`{"$schema": "http://json-schema.org/draft-07/schema#"}`: "eventbus takes JSON Schema 2020-12",
		`{"properties": {"a": {"minLength": -1}}}`:               "not a valid JSON Schema 2020-12: at $.properties.a.minLength",
	} {
		_, err := Add(ctx, pool, "order.shipped", []byte(schema), "")
		require.Error(t, err, schema)
		assert.Contains(t, err.Error(), want, schema)
		assert.NotContains(t, err.Error(), "\n", schema)
	}
	versions, err := ListType(ctx, pool, "order.shipped")
	require.NoError(t, err)
	assert.Len(t, versions, 5, "nothing added by a refused schema")
}

// authenticated reads the catalog and cannot write it; service_role can.
func TestEventTypesRowLevelSecurity(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	ctx := t.Context()
	as := func(role string, fn func(pgx.Tx) error) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
				return err
			}
			return fn(tx)
		})
	}
	require.NoError(t, as("authenticated", func(tx pgx.Tx) error {
		versions, err := List(ctx, tx)
		assert.Len(t, versions, 2, "the seeded lead types")
		return err
	}))
	err := as("authenticated", func(tx pgx.Tx) error {
		_, err := Add(ctx, tx, "lead.created", nil, "")
		return err
	})
	assert.ErrorContains(t, err, "permission denied")
	err = as("anon", func(tx pgx.Tx) error {
		_, err := List(ctx, tx)
		return err
	})
	assert.ErrorContains(t, err, "permission denied")
	require.NoError(t, as("service_role", func(tx pgx.Tx) error {
		v, err := Add(ctx, tx, "lead.created", nil, "")
		assert.Equal(t, 2, v.Version)
		return err
	}))
}

// A running Follower sees a new version within seconds, and a changed
// schema, without a restart.
func TestFollowerFollowsChanges(t *testing.T) {
	t.Parallel()
	pool := testdb.MigratedPool(t)
	ctx, cancel := context.WithCancel(t.Context())
	cat := New()
	done := make(chan error, 1)
	go func() {
		done <- Follower{Pool: pool, Catalog: cat, Interval: time.Hour, Log: testenv.Logger(t)}.Run(ctx)
	}()
	defer func() { cancel(); require.NoError(t, <-done) }()

	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return cat.Registered("lead.created"), "the initial load"
	})
	_, err := Add(t.Context(), pool, "order.shipped", []byte(`{"type": "object", "required": ["order_id"]}`), "")
	require.NoError(t, err)
	order := &event.Event{EventType: "order.shipped", Payload: []byte(`{}`)}
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		_, err := cat.Check(order)
		return err != nil, "the new type's schema applies"
	})
	_, err = pool.Exec(t.Context(), `UPDATE public.event_types SET schema = '{"type": "object"}' WHERE event_type = 'order.shipped'`)
	require.NoError(t, err)
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		_, err := cat.Check(order)
		return err == nil, fmt.Sprintf("the changed schema applies: %v", err)
	})
	_, err = pool.Exec(t.Context(), `DELETE FROM public.event_types WHERE event_type = 'order.shipped'`)
	require.NoError(t, err)
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		return !cat.Registered("order.shipped"), "the type is gone"
	})
}

// A stored schema that does not compile leaves its version unchecked and
// is reported; the rest of the catalog applies.
func TestBrokenStoredSchemaIsReported(t *testing.T) {
	t.Parallel()
	cat := New()
	problems := cat.Set([]Version{
		{EventType: "a.b", Version: 1, Schema: []byte(`{"type": 12}`)},
		{EventType: "c.d", Version: 1, Schema: []byte(`{"type": "string"}`)},
	})
	require.Len(t, problems, 1)
	assert.Contains(t, problems[0].Error(), "schema of a.b version 1")
	v, err := cat.Check(&event.Event{EventType: "a.b", Payload: []byte(`1`)})
	assert.NoError(t, err)
	assert.Equal(t, "1", v)
	_, err = cat.Check(&event.Event{EventType: "c.d", Payload: []byte(`1`)})
	assert.True(t, errors.As(err, new(*InvalidError)))
}

// What a check costs per event (see README "Event types"): the seeded
// lead.created schema against a trigger's payload, and a type that is not
// registered.
func BenchmarkCheck(b *testing.B) {
	sch := seededLeadCreated(b)
	cat := New()
	require.Empty(b, cat.Set([]Version{{EventType: "lead.created", Version: 1, Schema: sch}}))
	b.Run("lead.created", func(b *testing.B) {
		e := leadCreated(validLead, `{"trigger": "insert"}`)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cat.Check(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unregistered", func(b *testing.B) {
		e := &event.Event{EventType: "order.shipped", Payload: []byte(validLead), Metadata: []byte(`{"trigger": "insert"}`)}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cat.Check(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// seededLeadCreated is migration 0014's lead.created schema.
func seededLeadCreated(tb testing.TB) []byte {
	b, err := os.ReadFile("../schema/migrations/0014_event_types.sql")
	require.NoError(tb, err)
	sql := string(b)
	start := strings.Index(sql, "('lead.created', 1, $json$") + len("('lead.created', 1, $json$")
	end := strings.Index(sql[start:], "$json$")
	return []byte(sql[start : start+end])
}

package outbox

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/event"
)

// searchRows inserts the rows the search tests look for and returns their
// ids by name, created a minute apart, "lead-1" oldest.
func searchRows(t *testing.T, pool *pgxpool.Pool, now time.Time) map[string]string {
	t.Helper()
	rows := []struct {
		name, org, status, eventType, aggregateID, payload, errorMessage string
	}{
		{"lead-1", orgA, event.StatusProcessed, "lead.created", "lead-1", `{"lead_id": "l1", "first_name": "Ada", "tags": ["vip", "web"]}`, ""},
		{"lead-2", orgB, event.StatusProcessed, "lead.created", "lead-2", `{"lead_id": "l2", "first_name": "Grace", "tags": ["web"]}`, ""},
		{"pay-1", orgA, event.StatusFailed, "payment.completed", "pay-1", `{"amount": 10, "currency": "RUB"}`, "nats: no responders on SUBJECT_X"},
		{"lead-3", orgA, event.StatusPending, "lead.status_updated", "lead-3", `{"lead_id": "l3", "first_name": "Ada", "old": {"status": "new"}}`, ""},
		{"odd", "", event.StatusFailed, "import_100%", "x_1", `{"n": 1}`, `path "a\b" refused`},
	}
	ids := map[string]string{}
	for i, r := range rows {
		var org any
		if r.org != "" {
			org = r.org
		}
		var errMsg any
		if r.errorMessage != "" {
			errMsg = r.errorMessage
		}
		var id string
		require.NoError(t, pool.QueryRow(t.Context(), `INSERT INTO public.event_bus
			(event_type, aggregate_type, aggregate_id, organization_id, status, created_at, payload, error_message)
			VALUES ($1, 'test', $2, $3::uuid, $4, $5, $6::jsonb, $7) RETURNING id::text`,
			r.eventType, r.aggregateID, org, r.status, now.Add(time.Duration(i-len(rows))*time.Minute), r.payload, errMsg).Scan(&id))
		ids[r.name] = id
	}
	return ids
}

// Each search filter alone and combined with the others selects exactly its
// rows, newest first; q matches as text (a % or _ in it is no wildcard).
func TestSearchFilters(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	now := time.Now()
	id := searchRows(t, pool, now)
	for name, c := range map[string]struct {
		f    Filter
		want []string // newest first
	}{
		"payload key":          {Filter{PayloadContains: []byte(`{"first_name": "Ada"}`)}, []string{"lead-3", "lead-1"}},
		"payload two keys":     {Filter{PayloadContains: []byte(`{"first_name": "Ada", "lead_id": "l1"}`)}, []string{"lead-1"}},
		"payload array member": {Filter{PayloadContains: []byte(`{"tags": ["web"]}`)}, []string{"lead-2", "lead-1"}},
		"payload nested":       {Filter{PayloadContains: []byte(`{"old": {"status": "new"}}`)}, []string{"lead-3"}},
		"payload number":       {Filter{PayloadContains: []byte(`{"amount": 10}`)}, []string{"pay-1"}},
		"payload empty object": {Filter{PayloadContains: []byte(`{}`)}, []string{"odd", "lead-3", "pay-1", "lead-2", "lead-1"}},
		"payload no match":     {Filter{PayloadContains: []byte(`{"first_name": "ada"}`)}, nil},
		"q in event_type":      {Filter{Text: "STATUS_upd"}, []string{"lead-3"}},
		"q in aggregate_id":    {Filter{Text: "pay-"}, []string{"pay-1"}},
		"q in error_message":   {Filter{Text: "no responders"}, []string{"pay-1"}},
		"q prefix of types":    {Filter{Text: "lead"}, []string{"lead-3", "lead-2", "lead-1"}},
		"q percent is literal": {Filter{Text: "100%"}, []string{"odd"}},
		"q underscore literal": {Filter{Text: "x_"}, []string{"odd"}},
		"q backslash literal":  {Filter{Text: `a\b`}, []string{"odd"}},
		"q wildcard-free":      {Filter{Text: "_"}, []string{"odd", "lead-3", "pay-1"}},
		"organization":         {Filter{OrganizationID: orgA}, []string{"lead-3", "pay-1", "lead-1"}},
		"since":                {Filter{Since: now.Add(-3*time.Minute - time.Second)}, []string{"odd", "lead-3", "pay-1"}},
		"until":                {Filter{Until: now.Add(-3*time.Minute - time.Second)}, []string{"lead-2", "lead-1"}},
		"payload and org":      {Filter{PayloadContains: []byte(`{"tags": ["web"]}`), OrganizationID: orgB}, []string{"lead-2"}},
		"q and payload":        {Filter{Text: "status", PayloadContains: []byte(`{"first_name": "Ada"}`)}, []string{"lead-3"}},
		"q, org, status, time": {Filter{Text: "lead", OrganizationID: orgA, Statuses: []string{event.StatusProcessed}, Since: now.Add(-time.Hour), Until: now}, []string{"lead-1"}},
	} {
		f := c.f
		f.NewestFirst = true
		var want []string
		for _, n := range c.want {
			want = append(want, id[n])
		}
		assert.Equal(t, want, listIDs(t, pool, f), name)
		n, capped, err := CountUpTo(t.Context(), pool, f, 100)
		require.NoError(t, err, name)
		assert.Equal(t, len(want), n, "%s: count", name)
		assert.False(t, capped, name)
	}
}

// A search pages by keyset like the plain list: every match once, in order.
func TestSearchPagesByKeyset(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var want []string
	for i := range 9 {
		payload := `{"kind": "other"}`
		if i%3 != 0 {
			payload = `{"kind": "wanted", "i": ` + string(rune('0'+i)) + `}`
		}
		id := insertEvent(t, pool, orgA, event.StatusProcessed, "lead.created", "lead", base.Add(time.Duration(i/2)*time.Second))
		_, err := pool.Exec(t.Context(), `UPDATE public.event_bus SET payload = $2::jsonb WHERE id = $1`, id, payload)
		require.NoError(t, err)
		if i%3 != 0 {
			want = append(want, id)
		}
	}
	search := Filter{NewestFirst: true, PayloadContains: []byte(`{"kind": "wanted"}`), Text: "LEAD", OrganizationID: orgA}
	all := listIDs(t, pool, search)
	require.ElementsMatch(t, want, all)

	var got []string
	f := search
	f.Limit = 2
	for range 10 {
		events, err := ListEvents(t.Context(), pool, f)
		require.NoError(t, err)
		for _, e := range events {
			got = append(got, e.ID)
		}
		if len(events) < f.Limit {
			break
		}
		last := events[len(events)-1]
		f.Before = &Position{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	assert.Equal(t, all, got, "pages of 2 list every match once, newest first")

	// The count is of the search, not of the page; past the cap it says so.
	n, capped, err := CountUpTo(t.Context(), pool, f, 100)
	require.NoError(t, err)
	assert.Equal(t, 6, n)
	assert.False(t, capped)
	n, capped, err = CountUpTo(t.Context(), pool, search, 5)
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	assert.True(t, capped)
	n, capped, err = CountUpTo(t.Context(), pool, search, 6)
	require.NoError(t, err)
	assert.Equal(t, 6, n)
	assert.False(t, capped, "exactly the cap is exact")
}

// The payload search is served by the GIN index of 0016 when it is selective.
func TestPayloadSearchUsesTheIndex(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	_, err := pool.Exec(t.Context(), `INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, payload, created_at)
		SELECT 'lead.created', 'lead', 'lead-' || i, jsonb_build_object('lead_id', 'l' || i, 'n', i % 7), now() - i * interval '1 second'
		FROM generate_series(1, 20000) AS i`)
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `ANALYZE public.event_bus`)
	require.NoError(t, err)
	sql, args := Filter{NewestFirst: true, Limit: 101, PayloadContains: []byte(`{"lead_id": "l1234"}`)}.query("id")
	rows, err := pool.Query(t.Context(), "EXPLAIN "+sql, args...)
	require.NoError(t, err)
	var plan []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan = append(plan, line)
	}
	require.NoError(t, rows.Err())
	assert.Contains(t, joinLines(plan), "event_bus_payload_path_idx", "plan:\n%s", joinLines(plan))
}

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

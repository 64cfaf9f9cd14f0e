package monitor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
	"github.com/eventbus/eventbus/internal/testenv/testdb"
	"github.com/eventbus/eventbus/publisher"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

const (
	adminToken = "admin-token-for-tests-0123456789"
	jwtSecret  = "jwt-secret-for-tests-0123456789-abcdef"

	orgA    = "aaaaaaaa-0000-4000-8000-000000000001"
	orgB    = "bbbbbbbb-0000-4000-8000-000000000002"
	adminA  = "aaaaaaaa-1111-4000-8000-000000000001"
	adminB  = "bbbbbbbb-1111-4000-8000-000000000002"
	memberA = "aaaaaaaa-2222-4000-8000-000000000003"
)

// env is what a test of the monitor needs.
type env struct {
	pool    *pgxpool.Pool
	srv     *httptest.Server
	natsURL string
	prefix  string
}

// setup migrates a fresh database, adds two organizations (an admin each, and
// a non-admin member of A), connects a publisher to a stream of the test's
// own, and serves the monitor.
func setup(t *testing.T) *env {
	t.Helper()
	pool := testdb.MigratedPool(t)
	_, err := pool.Exec(t.Context(), `INSERT INTO public.profiles (id, organization_id, role) VALUES
		($1, $2, 'admin'), ($3, $4, 'admin'), ($5, $2, 'member')`, adminA, orgA, adminB, orgB, memberA)
	require.NoError(t, err)

	natsURL := testenv.NATSURL(t)
	prefix := testenv.UniqueName(t, "ev")
	pub, err := publisher.Connect(t.Context(), publisher.Options{
		URL: natsURL, Stream: strings.ToUpper(prefix), SubjectPrefix: prefix, MaxPending: 16, Log: testenv.Logger(t),
	})
	require.NoError(t, err)
	t.Cleanup(pub.Close)
	require.NoError(t, pub.EnsureStream(t.Context()))

	srv := httptest.NewServer(New(Options{
		Pool: pool, Publisher: pub, AdminToken: adminToken, JWTSecret: jwtSecret,
		Slot: "eventbus", Ready: func() bool { return false }, Log: testenv.Logger(t),
	}))
	t.Cleanup(srv.Close)
	return &env{pool: pool, srv: srv, natsURL: natsURL, prefix: prefix}
}

// call sends a request with token as bearer (none when empty) and returns
// the status and the decoded JSON body.
func (e *env) call(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	status, raw := e.callRaw(t, method, path, token, body)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), "%s %s answered %d with non-JSON %q", method, path, status, raw)
	return status, out
}

func (e *env) callRaw(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	status, raw, _ := e.callFull(t, method, path, token, body)
	return status, raw
}

// callFull is callRaw with the response's headers.
func (e *env) callFull(t *testing.T, method, path, token string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw, resp.Header
}

// insert stores an event directly (as the table owner) and returns its id.
func (e *env) insert(t *testing.T, org, status, eventType, aggregateID string, createdAt time.Time) string {
	t.Helper()
	var orgArg any
	if org != "" {
		orgArg = org
	}
	var id string
	require.NoError(t, e.pool.QueryRow(t.Context(), `INSERT INTO public.event_bus
		(event_type, aggregate_type, aggregate_id, organization_id, status, created_at, payload)
		VALUES ($1, 'test', $2, $3::uuid, $4, $5, '{"n": 1}') RETURNING id::text`,
		eventType, aggregateID, orgArg, status, createdAt).Scan(&id))
	return id
}

func signJWT(t testing.TB, secret string, claims map[string]any) string {
	t.Helper()
	return hmacWith(t, `{"alg":"HS256","typ":"JWT"}`, claims, []byte(secret))
}

func userJWT(t *testing.T, sub string) string {
	t.Helper()
	return signJWT(t, jwtSecret, userClaims(sub))
}

func ids(t *testing.T, body map[string]any) []string {
	t.Helper()
	events, ok := body["events"].([]any)
	require.True(t, ok, "events is a list: %v", body)
	var out []string
	for _, e := range events {
		out = append(out, e.(map[string]any)["id"].(string))
	}
	return out
}

func TestListWalksEveryEventOnceNewestFirst(t *testing.T) {
	t.Parallel()
	e := setup(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 130 {
		// Pairs share a created_at: the id breaks the tie.
		e.insert(t, orgA, "processed", "lead.created", fmt.Sprintf("lead-%03d", i), base.Add(time.Duration(i/2)*time.Second))
	}
	// Newest first: by created_at, then id, descending.
	rows, err := e.pool.Query(t.Context(), `SELECT id::text FROM public.event_bus ORDER BY created_at DESC, id DESC`)
	require.NoError(t, err)
	want, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, want, 130)

	status, body := e.call(t, "GET", "/api/events", adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	first := ids(t, body)
	assert.Len(t, first, 100, "default limit")
	assert.Equal(t, want[:100], first)
	require.NotNil(t, body["next_cursor"])

	var got []string
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 20, "pagination does not end")
		path := "/api/events?limit=30"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		status, body := e.call(t, "GET", path, adminToken, nil)
		require.Equal(t, http.StatusOK, status, body)
		for _, id := range ids(t, body) {
			require.False(t, seen[id], "event %s on two pages", id)
			seen[id] = true
			got = append(got, id)
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			assert.Nil(t, body["next_cursor"], "the last page's next_cursor is null")
			break
		}
		cursor = next
	}
	assert.Equal(t, want, got, "every event once, newest first, no gaps")
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	old := e.insert(t, orgA, "failed", "lead.created", "lead-1", now.Add(-3*time.Hour))
	mid := e.insert(t, orgB, "pending", "lead.status_updated", "lead-2", now.Add(-2*time.Hour))
	recent := e.insert(t, orgA, "processed", "payment.completed", "pay-1", now.Add(-time.Hour))

	for query, want := range map[string][]string{
		"status=failed":                  {old},
		"event_type=lead.status_updated": {mid},
		"aggregate_type=test":            {recent, mid, old},
		"aggregate_id=lead":              {mid, old},
		"aggregate_id=pay-1":             {recent},
		"organization_id=" + orgA:        {recent, old},
		"since=" + url.QueryEscape(now.Add(-150*time.Minute).Format(time.RFC3339)): {recent, mid},
		"until=" + url.QueryEscape(now.Add(-150*time.Minute).Format(time.RFC3339)): {old},
		"status=pending&organization_id=" + orgA:                                   nil,
		"limit=1":                                                                  {recent},
	} {
		status, body := e.call(t, "GET", "/api/events?"+query, adminToken, nil)
		require.Equal(t, http.StatusOK, status, "%s: %v", query, body)
		assert.Equal(t, want, ids(t, body), query)
	}
}

func TestGetEvent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.insert(t, "", "failed", "lead.created", "lead-1", time.Now())
	_, err := e.pool.Exec(t.Context(), `UPDATE public.event_bus SET retry_count = 5, error_message = 'broker said no' WHERE id = $1`, id)
	require.NoError(t, err)

	status, body := e.call(t, "GET", "/api/events/"+id, adminToken, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, id, body["id"])
	assert.Equal(t, "lead.created", body["event_type"])
	assert.Equal(t, "test", body["aggregate_type"])
	assert.Equal(t, "lead-1", body["aggregate_id"])
	assert.Nil(t, body["organization_id"])
	assert.Equal(t, map[string]any{"n": float64(1)}, body["payload"], "payload is a JSON object, not a string")
	assert.Equal(t, map[string]any{}, body["metadata"])
	assert.Equal(t, "failed", body["status"])
	assert.Nil(t, body["processed_at"])
	assert.Equal(t, float64(5), body["retry_count"])
	assert.Equal(t, "broker said no", body["error_message"])
	_, err = time.Parse(time.RFC3339, body["created_at"].(string))
	assert.NoError(t, err)

	status, body = e.call(t, "GET", "/api/events/00000000-0000-4000-8000-000000000000", adminToken, nil)
	assert.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, body["error"], "not found")
}

func TestBadInputIs400(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/events?status=done", ""},
		{"GET", "/api/events?organization_id=acme", ""},
		{"GET", "/api/events?since=yesterday", ""},
		{"GET", "/api/events?until=2026-13-01", ""},
		{"GET", "/api/events?limit=0", ""},
		{"GET", "/api/events?limit=501", ""},
		{"GET", "/api/events?limit=ten", ""},
		{"GET", "/api/events?cursor=garbage", ""},
		{"GET", "/api/events?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("x|y")), ""},
		{"GET", "/api/events/not-a-uuid", ""},
		{"POST", "/api/events/not-a-uuid/replay", ""},
		{"POST", "/api/events", `{"event_type":`},
		{"POST", "/api/events", `[1,2]`},
		{"POST", "/api/events", `{"event_type":"a.b","aggregate_type":"t","aggregate_id":"1","colour":"red"}`},
		{"POST", "/api/events", `{"event_type":"lead created","aggregate_type":"lead","aggregate_id":"1"}`},
		{"POST", "/api/events", `{"event_type":"a.b","aggregate_type":"","aggregate_id":"1"}`},
		{"POST", "/api/events", `{"event_type":"a.b","aggregate_type":"t","aggregate_id":"1","payload":[1]}`},
		{"POST", "/api/events", `{"event_type":"a.b","aggregate_type":"t","aggregate_id":"1","organization_id":"acme"}`},
		{"POST", "/api/events/process", `{"limit":-1}`},
		{"POST", "/api/events/process", `{"limit":"ten"}`},
	} {
		status, body := e.call(t, tc.method, tc.path, adminToken, tc.body)
		assert.Equal(t, http.StatusBadRequest, status, "%s %s %s: %v", tc.method, tc.path, tc.body, body)
		assert.NotEmpty(t, body["error"], "%s %s %s", tc.method, tc.path, tc.body)
	}

	status, body := e.call(t, "POST", "/api/events", adminToken, `{"event_type":"a.b","aggregate_type":"t","aggregate_id":"1","payload":{"x":"`+strings.Repeat("x", 2<<20)+`"}}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status, body)

	status, body = e.call(t, "GET", "/api/nothing", adminToken, nil)
	assert.Equal(t, http.StatusNotFound, status, body)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := setup(t)
	enc := base64.RawURLEncoding
	hour := time.Now().Add(time.Hour).Unix()
	for name, tc := range map[string]struct {
		token string
		want  int
	}{
		"no token":            {"", http.StatusUnauthorized},
		"wrong token":         {"not-the-admin-token", http.StatusUnauthorized},
		"expired JWT":         {signJWT(t, jwtSecret, map[string]any{"sub": adminA, "exp": time.Now().Add(-time.Minute).Unix()}), http.StatusUnauthorized},
		"JWT without exp":     {signJWT(t, jwtSecret, map[string]any{"sub": adminA}), http.StatusUnauthorized},
		"JWT not yet valid":   {signJWT(t, jwtSecret, map[string]any{"sub": adminA, "exp": hour, "nbf": hour - 60}), http.StatusUnauthorized},
		"JWT of another key":  {signJWT(t, "another-secret-another-secret-0123456", map[string]any{"sub": adminA, "exp": hour}), http.StatusUnauthorized},
		"JWT alg none":        {enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString(fmt.Appendf(nil, `{"sub":%q,"exp":%d}`, adminA, hour)) + ".", http.StatusUnauthorized},
		"JWT sub not a uuid":  {signJWT(t, jwtSecret, map[string]any{"sub": "alice", "exp": hour}), http.StatusUnauthorized},
		"JWT of a non-admin":  {userJWT(t, memberA), http.StatusForbidden},
		"JWT without profile": {userJWT(t, "cccccccc-0000-4000-8000-000000000009"), http.StatusForbidden},
		"JWT of an admin":     {userJWT(t, adminA), http.StatusOK},
		"admin token":         {adminToken, http.StatusOK},
	} {
		for _, path := range []string{"/api/events", "/api/stats"} {
			status, body := e.call(t, "GET", path, tc.token, nil)
			assert.Equal(t, tc.want, status, "%s: %s: %v", name, path, body)
			if status != http.StatusOK {
				assert.NotEmpty(t, body["error"], "%s: %s", name, path)
			}
		}
	}
	// Every endpoint, not only the reads, refuses a non-admin.
	member := userJWT(t, memberA)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/api/events", `{"event_type":"a.b","aggregate_type":"t","aggregate_id":"1"}`},
		{"POST", "/api/events/process", `{}`},
		{"GET", "/api/events/00000000-0000-4000-8000-000000000000", ""},
		{"POST", "/api/events/00000000-0000-4000-8000-000000000000/replay", ""},
	} {
		status, body := e.call(t, tc.method, tc.path, member, tc.body)
		assert.Equal(t, http.StatusForbidden, status, "%s %s: %v", tc.method, tc.path, body)
	}
	var n int
	require.NoError(t, e.pool.QueryRow(t.Context(), `SELECT count(*) FROM public.event_bus`).Scan(&n))
	assert.Zero(t, n, "a refused publish stores nothing")

	// A tampered payload keeps the signature of the original.
	parts := strings.Split(userJWT(t, memberA), ".")
	parts[1] = enc.EncodeToString(fmt.Appendf(nil, `{"sub":%q,"exp":%d}`, adminA, hour))
	status, _ := e.call(t, "GET", "/api/events", strings.Join(parts, "."), nil)
	assert.Equal(t, http.StatusUnauthorized, status, "tampered JWT")

	// Without the token, even unknown paths answer 401: nothing to probe.
	status, _ = e.call(t, "POST", "/api/events/process", "", `{}`)
	assert.Equal(t, http.StatusUnauthorized, status)

	disabled := httptest.NewServer(New(Options{Pool: e.pool}))
	t.Cleanup(disabled.Close)
	resp, err := disabled.Client().Get(disabled.URL + "/api/events")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "neither token nor JWT secret: disabled")
}

func TestAdminOfOneOrganizationNeverSeesAnother(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	a1 := e.insert(t, orgA, "processed", "lead.created", "a-1", now.Add(-time.Minute))
	a2 := e.insert(t, orgA, "failed", "lead.created", "a-2", now.Add(-time.Minute))
	b1 := e.insert(t, orgB, "failed", "lead.created", "b-1", now.Add(-time.Minute))
	b2 := e.insert(t, orgB, "pending", "lead.created", "b-2", now.Add(-time.Minute))
	b3 := e.insert(t, orgB, "processed", "lead.created", "b-3", now.Add(-time.Minute))
	tokA, tokB := userJWT(t, adminA), userJWT(t, adminB)

	// List, with and without a filter naming the other organization.
	_, body := e.call(t, "GET", "/api/events", tokA, nil)
	assert.ElementsMatch(t, []string{a1, a2}, ids(t, body))
	_, body = e.call(t, "GET", "/api/events?organization_id="+orgB, tokA, nil)
	assert.Empty(t, ids(t, body))
	_, body = e.call(t, "GET", "/api/events", tokB, nil)
	assert.ElementsMatch(t, []string{b1, b2, b3}, ids(t, body))
	_, body = e.call(t, "GET", "/api/events", adminToken, nil)
	assert.Len(t, ids(t, body), 5, "the admin token sees every organization")

	// Get and replay of B's event.
	for _, tc := range []struct{ method, path string }{{"GET", "/api/events/" + b1}, {"POST", "/api/events/" + b1 + "/replay"}} {
		status, body := e.call(t, tc.method, tc.path, tokA, nil)
		assert.Equal(t, http.StatusNotFound, status, "%s %s: %v", tc.method, tc.path, body)
	}
	status, _ := e.call(t, "GET", "/api/events/"+a1, tokA, nil)
	assert.Equal(t, http.StatusOK, status)

	// Stats.
	_, st := e.call(t, "GET", "/api/stats", tokA, nil)
	assert.Equal(t, float64(2), st["total"])
	assert.Equal(t, float64(1), st["failed"])
	assert.Equal(t, float64(0), st["pending"])
	var perMinute float64
	for _, m := range st["per_minute"].([]any) {
		mm := m.(map[string]any)
		perMinute += mm["pending"].(float64) + mm["processing"].(float64) + mm["processed"].(float64) + mm["failed"].(float64)
	}
	assert.Equal(t, float64(2), perMinute, "per_minute counts A's events only")
	_, st = e.call(t, "GET", "/api/stats", adminToken, nil)
	assert.Equal(t, float64(5), st["total"])

	// Process hands back A's failed event, not B's.
	status, body = e.call(t, "POST", "/api/events/process", tokA, map[string]any{"limit": 100})
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, float64(1), body["handed_back"])
	var stA, stB string
	require.NoError(t, e.pool.QueryRow(t.Context(), `SELECT
		(SELECT status FROM public.event_bus WHERE id = $1), (SELECT status FROM public.event_bus WHERE id = $2)`, a2, b1).Scan(&stA, &stB))
	assert.Equal(t, "pending", stA)
	assert.Equal(t, "failed", stB)

	// Publish: into A by default, never into B.
	status, body = e.call(t, "POST", "/api/events", tokA, map[string]any{"event_type": "note.added", "aggregate_type": "note", "aggregate_id": "n-1"})
	require.Equal(t, http.StatusCreated, status, body)
	var org string
	require.NoError(t, e.pool.QueryRow(t.Context(), `SELECT organization_id::text FROM public.event_bus WHERE id = $1`, body["id"]).Scan(&org))
	assert.Equal(t, orgA, org)
	status, body = e.call(t, "POST", "/api/events", tokA, map[string]any{"event_type": "note.added", "aggregate_type": "note", "aggregate_id": "n-2", "organization_id": orgB})
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body["error"], "not the caller's organization")
}

func TestPublishCreatesARow(t *testing.T) {
	t.Parallel()
	e := setup(t)
	status, body := e.call(t, "POST", "/api/events", adminToken, map[string]any{
		"event_type": "payment.completed", "aggregate_type": "payment", "aggregate_id": "p-1",
		"payload": map[string]any{"amount": 100}, "metadata": map[string]any{"source": "monitor"}, "organization_id": orgB,
	})
	require.Equal(t, http.StatusCreated, status, body)
	id, _ := body["id"].(string)
	require.Regexp(t, uuidRE, id)

	status, ev := e.call(t, "GET", "/api/events/"+id, adminToken, nil)
	require.Equal(t, http.StatusOK, status, ev)
	assert.Equal(t, "payment.completed", ev["event_type"])
	assert.Equal(t, "pending", ev["status"])
	assert.Equal(t, orgB, ev["organization_id"])
	assert.Equal(t, map[string]any{"amount": float64(100)}, ev["payload"])
	assert.Equal(t, map[string]any{"source": "monitor"}, ev["metadata"])

	status, body = e.call(t, "POST", "/api/events", adminToken, `{"event_type":"a.b","aggregate_type":"t","aggregate_id":"x"}`)
	require.Equal(t, http.StatusCreated, status, body, "payload and metadata are optional")
}

func TestProcessHandsBackAFailedEvent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	failed := e.insert(t, orgA, "failed", "lead.created", "l-1", time.Now().Add(-time.Minute))
	done := e.insert(t, orgA, "processed", "lead.created", "l-2", time.Now().Add(-time.Minute))

	status, body := e.call(t, "POST", "/api/events/process", adminToken, "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, float64(1), body["handed_back"])
	for id, want := range map[string]string{failed: "pending", done: "processed"} {
		_, ev := e.call(t, "GET", "/api/events/"+id, adminToken, nil)
		assert.Equal(t, want, ev["status"], id)
	}
	status, body = e.call(t, "POST", "/api/events/process", adminToken, map[string]any{"limit": 10})
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, float64(1), body["handed_back"], "still pending (no relay runs here) and older than 5 s: handed back again")
}

func TestReplayRepublishesTheEvent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.insert(t, orgA, "processed", "lead.created", "l-1", time.Now())

	nc, err := nats.Connect(e.natsURL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	msgs := make(chan *nats.Msg, 4)
	sub, err := nc.ChanSubscribe(e.prefix+".>", msgs)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())

	for _, token := range []string{adminToken, userJWT(t, adminA)} {
		status, body := e.call(t, "POST", "/api/events/"+id+"/replay", token, nil)
		require.Equal(t, http.StatusOK, status, body)
		assert.Equal(t, map[string]any{"replayed": float64(1)}, body)
		select {
		case m := <-msgs:
			assert.Equal(t, e.prefix+".lead.created", m.Subject)
			assert.Equal(t, "true", m.Header.Get("Eventbus-Replay"))
			assert.True(t, strings.HasPrefix(m.Header.Get("Nats-Msg-Id"), id+":replay:"), m.Header.Get("Nats-Msg-Id"))
		case <-time.After(10 * time.Second):
			t.Fatal("the replayed event did not reach NATS")
		}
	}
	status, _ := e.call(t, "POST", "/api/events/00000000-0000-4000-8000-000000000000/replay", adminToken, nil)
	assert.Equal(t, http.StatusNotFound, status)
}

func TestStats(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	e.insert(t, orgA, "pending", "a.b", "1", now)
	e.insert(t, orgA, "processed", "a.b", "2", now)
	e.insert(t, orgA, "processed", "a.b", "3", now.Add(-30*time.Minute))
	e.insert(t, orgA, "failed", "a.b", "4", now.Add(-3*time.Hour))
	e.insert(t, orgA, "processed", "a.b", "5", now.Add(-25*time.Hour)) // outside the 24 h

	status, st := e.call(t, "GET", "/api/stats", adminToken, nil)
	require.Equal(t, http.StatusOK, status, st)
	assert.Equal(t, float64(1), st["pending"])
	assert.Equal(t, float64(0), st["processing"])
	assert.Equal(t, float64(2), st["processed"])
	assert.Equal(t, float64(1), st["failed"])
	assert.Equal(t, float64(4), st["total"])

	perMinute := st["per_minute"].([]any)
	require.Len(t, perMinute, 60, "every minute of the last hour")
	var processed, pending float64
	var prev time.Time
	for _, m := range perMinute {
		mm := m.(map[string]any)
		at, err := time.Parse(time.RFC3339, mm["minute"].(string))
		require.NoError(t, err)
		assert.True(t, at.After(prev), "minutes in order")
		prev = at
		processed += mm["processed"].(float64)
		pending += mm["pending"].(float64)
	}
	assert.Equal(t, float64(2), processed)
	assert.Equal(t, float64(1), pending)

	relay := st["relay"].(map[string]any)
	assert.Equal(t, "eventbus", relay["slot"])
	assert.Equal(t, false, relay["slot_active"])
	assert.Nil(t, relay["lag_bytes"], "no slot: no lag")
	assert.Equal(t, "stopped", relay["state"])
	assert.Equal(t, true, relay["nats_connected"])
}

func TestWebPage(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(Options{AdminToken: adminToken}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	resp, err := client.Get(srv.URL + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "/crm/events", resp.Header.Get("Location"))

	for _, path := range []string{"/crm/events", "/crm/events/"} {
		resp, err = client.Get(srv.URL + path)
		require.NoError(t, err)
		page, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Contains(t, resp.Header.Get("Content-Type"), "text/html", path)
		assert.Contains(t, strings.ToLower(string(page)), "<html", path)
	}
	entries, err := web.ReadDir("web")
	require.NoError(t, err)
	for _, entry := range entries {
		resp, err = client.Get(srv.URL + "/crm/events/" + entry.Name())
		require.NoError(t, err)
		resp.Body.Close()
		assert.Contains(t, []int{http.StatusOK, http.StatusMovedPermanently}, resp.StatusCode, entry.Name()) // index.html redirects to ./
	}
	resp, err = client.Get(srv.URL + "/crm/events/no-such-file.js")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

package monitor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the log lines decoded.
func (l *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "log line %s", sc.Bytes())
		out = append(out, m)
	}
	return out
}

// A database error is the operator's to read, in the log; the caller gets a
// generic answer with the id that finds the log line.
func TestInternalErrorsHideTheDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.insert(t, orgA, "failed", "lead.created", "l-1", time.Now())
	logs := &logBuffer{}
	srv := httptest.NewServer(New(Options{
		Pool: e.pool, AdminToken: adminToken, JWTSecret: jwtSecret, Log: slog.New(slog.NewJSONHandler(logs, nil)),
	}))
	t.Cleanup(srv.Close)
	e.srv = srv
	_, err := e.pool.Exec(t.Context(), `DROP TABLE public.event_bus CASCADE`)
	require.NoError(t, err)

	check := func(method, path, token string, body any, dbText string) {
		t.Helper()
		status, raw, header := e.callFull(t, method, path, token, body)
		require.Equal(t, http.StatusInternalServerError, status, "%s %s: %s", method, path, raw)
		var got map[string]string
		require.NoError(t, json.Unmarshal(raw, &got), "%s %s: %s", method, path, raw)
		reqID := got["request_id"]
		assert.Regexp(t, `^[A-Za-z0-9]{16,}$`, reqID, "%s %s", method, path)
		assert.Equal(t, map[string]string{"error": "internal error", "request_id": reqID}, got, "%s %s", method, path)
		assert.Equal(t, reqID, header.Get("X-Request-Id"), "%s %s", method, path)
		for _, word := range []string{"SQLSTATE", "relation", "event_bus", "profiles", "does not exist"} {
			assert.NotContains(t, string(raw), word, "%s %s", method, path)
		}
		var logged bool
		for _, line := range logs.lines(t) {
			if line["request_id"] == reqID {
				logged = true
				assert.Equal(t, "ERROR", line["level"], "%s %s", method, path)
				assert.Contains(t, line["err"], dbText, "%s %s: the log line has the database's error", method, path)
				assert.Equal(t, path, line["path"], "%s %s", method, path)
			}
		}
		assert.True(t, logged, "%s %s: a log line with request_id %s", method, path, reqID)
	}
	const gone = `relation "public.event_bus" does not exist`
	check("GET", "/api/events", adminToken, nil, gone)
	check("GET", "/api/events/"+id, adminToken, nil, gone)
	check("GET", "/api/stats", adminToken, nil, gone)
	check("POST", "/api/events", adminToken, map[string]any{"event_type": "a.b", "aggregate_type": "t", "aggregate_id": "1"}, gone)
	check("POST", "/api/events/process", adminToken, map[string]any{"limit": 1}, gone)

	_, err = e.pool.Exec(t.Context(), `DROP TABLE public.profiles CASCADE`)
	require.NoError(t, err)
	check("GET", "/api/events", userJWT(t, adminA), nil, `relation "public.profiles" does not exist`)

	// Every answer has an id, not only the failures.
	status, raw, header := e.callFull(t, "GET", "/api/events?limit=0", adminToken, nil)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.NotEmpty(t, header.Get("X-Request-Id"))
	assert.True(t, strings.Contains(string(raw), "limit"), "a 4xx keeps its text: %s", raw)
}

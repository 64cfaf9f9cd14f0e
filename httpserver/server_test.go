package httpserver

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "0123456789abcdef-admin"

// serve starts the listeners of cfg (addresses on 127.0.0.1, port 0) and
// returns their base URLs in order: main, then metrics.
func serve(t *testing.T, cfg Config) []string {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventbus_replication_lag_bytes"})
	reg.MustRegister(g)
	cfg.Gatherer = reg
	if cfg.Ready == nil {
		cfg.Ready = func() (bool, string) { return true, "" }
	}
	servers, err := Listen(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var urls []string
	for _, s := range servers {
		urls = append(urls, "http://"+s.Addr())
		wg.Go(func() { assert.NoError(t, s.Run(ctx)) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return urls
}

// get returns the status and body of GET url with the given Authorization.
func get(t *testing.T, url, authorization string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestOpenEndpointsNeedNoToken(t *testing.T) {
	base := serve(t, Config{Addr: "127.0.0.1:0", AdminToken: token})[0]
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		code, body := get(t, base+path, "")
		assert.Equal(t, http.StatusOK, code, path)
		if path == "/metrics" {
			assert.Contains(t, body, "eventbus_replication_lag_bytes")
		}
	}
}

func TestAdminEndpointsNeedTheToken(t *testing.T) {
	base := serve(t, Config{Addr: "127.0.0.1:0", AdminToken: token})[0]
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1", "/nothing-here"} {
		for name, auth := range map[string]string{
			"no header":    "",
			"wrong token":  "Bearer wrong-token-0123456789",
			"prefix":       "Bearer " + token[:len(token)-1],
			"longer":       "Bearer " + token + "x",
			"basic scheme": "Basic " + token,
			"bare token":   token,
		} {
			code, body := get(t, base+path, auth)
			assert.Equal(t, http.StatusUnauthorized, code, "%s with %s", path, name)
			assert.NotContains(t, body, "goroutine", "%s with %s shows nothing", path, name)
		}
	}

	code, body := get(t, base+"/debug/pprof/", "Bearer "+token)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "goroutine", "the pprof index")
	code, body = get(t, base+"/debug/pprof/goroutine?debug=1", "bearer "+token)
	assert.Equal(t, http.StatusOK, code, "the scheme is case-insensitive")
	assert.Contains(t, body, "goroutine profile")
	code, _ = get(t, base+"/debug/pprof/profile?seconds=1", "Bearer "+token)
	assert.Equal(t, http.StatusOK, code, "CPU profile")
	code, _ = get(t, base+"/nothing-here", "Bearer "+token)
	assert.Equal(t, http.StatusNotFound, code, "past the token, an unknown path is 404")
}

func TestAdminEndpointsOffWithoutAToken(t *testing.T) {
	base := serve(t, Config{Addr: "127.0.0.1:0"})[0]
	for _, auth := range []string{"", "Bearer ", "Bearer anything-at-all-really"} {
		code, body := get(t, base+"/debug/pprof/", auth)
		assert.Equal(t, http.StatusForbidden, code)
		assert.Contains(t, body, "EVENTBUS_ADMIN_TOKEN")
	}
	code, _ := get(t, base+"/healthz", "")
	assert.Equal(t, http.StatusOK, code)
}

func TestMetricsOnTheirOwnListener(t *testing.T) {
	urls := serve(t, Config{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", AdminToken: token})
	require.Len(t, urls, 2)
	main, metrics := urls[0], urls[1]

	code, body := get(t, metrics+"/metrics", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "eventbus_replication_lag_bytes")
	for _, path := range []string{"/healthz", "/debug/pprof/"} {
		code, _ = get(t, metrics+path, "Bearer "+token)
		assert.Equal(t, http.StatusNotFound, code, "the metrics listener serves /metrics only: %s", path)
	}

	code, _ = get(t, main+"/metrics", "")
	assert.Equal(t, http.StatusUnauthorized, code, "not on the main listener")
	code, _ = get(t, main+"/metrics", "Bearer "+token)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, main+"/healthz", "")
	assert.Equal(t, http.StatusOK, code)

	only := serve(t, Config{MetricsAddr: "127.0.0.1:0"})
	require.Len(t, only, 1, "metrics alone, HTTP_ADDR empty")
	code, _ = get(t, only[0]+"/metrics", "")
	assert.Equal(t, http.StatusOK, code)
}

func TestNotReady(t *testing.T) {
	base := serve(t, Config{Addr: "127.0.0.1:0", Ready: func() (bool, string) { return false, "NATS is disconnected" }})[0]
	code, body := get(t, base+"/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "not ready: NATS is disconnected\n", body, "the reason")
}

func TestMonitorServesItsPathsAndNothingElse(t *testing.T) {
	mon := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "monitor "+r.URL.Path)
	})
	urls := serve(t, Config{Addr: "127.0.0.1:0", AdminToken: token, Monitor: mon})
	for _, path := range []string{"/", "/api/events", "/api/stats", "/crm/events", "/crm/events/app.js"} {
		status, body := get(t, urls[0]+path, "")
		assert.Equal(t, http.StatusOK, status, path)
		assert.Equal(t, "monitor "+path, body, "the monitor checks its callers itself")
	}
	for _, path := range []string{"/crm/other", "/crm/eventsx", "/debug/pprof/"} {
		status, _ := get(t, urls[0]+path, "")
		assert.Equal(t, http.StatusUnauthorized, status, "%s stays behind the admin token", path)
	}
	status, body := get(t, urls[0]+"/healthz", "")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok\n", body)
}

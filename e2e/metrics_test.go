package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// scrape is one reading of /metrics: samples by series (name and labels as
// exposed, e.g. `eventbus_events_failed_total{event_type="x"}`) and the
// metric families the relay declares (its # TYPE lines).
type scrape struct {
	samples  map[string]float64
	families map[string]bool
}

func scrapeMetrics(t *testing.T, addr string) (scrape, error) {
	t.Helper()
	code, body := httpGet(addr, "/metrics")
	if code != http.StatusOK {
		return scrape{}, fmt.Errorf("GET /metrics: %d %s", code, body)
	}
	s := scrape{samples: map[string]float64{}, families: map[string]bool{}}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			s.families[strings.Fields(name)[0]] = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "sample line %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "sample line %q", line)
		s.samples[line[:i]] = v
	}
	return s, nil
}

// value returns the sample of series, or -1 when it is absent.
func (s scrape) value(series string) float64 {
	if v, ok := s.samples[series]; ok {
		return v
	}
	return -1
}

// waitMetrics polls /metrics until cond holds for one scrape and returns it.
func waitMetrics(t *testing.T, timeout time.Duration, addr string, cond func(scrape) (bool, string)) scrape {
	t.Helper()
	var last scrape
	eventually(t, timeout, func() (bool, string) {
		s, err := scrapeMetrics(t, addr)
		if err != nil {
			return false, err.Error()
		}
		last = s
		return cond(s)
	})
	return last
}

func TestMetricsLatencyAndBacklog(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_MAX_RETRIES=1"))
	ctx := t.Context()
	relay := e.startRelay()
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)

	const n = 20
	for i := range n {
		e.publish(ctx, "metric.latency", fmt.Sprintf("l-%d", i), `{}`)
	}
	e.insertDirect(ctx, "bad type", "l-bad", `{}`, "pending") // not a valid subject (publish_event refuses it): fails on its only attempt
	e.waitStatuses(map[string]int{"processed": n, "failed": 1}, 60*time.Second)

	s := waitMetrics(t, 30*time.Second, addr, func(s scrape) (bool, string) {
		got := fmt.Sprintf("latency count %v, publish count %v, pending %v, oldest pending %v, failed rows %v",
			s.value("eventbus_event_latency_seconds_count"), s.value("eventbus_publish_duration_seconds_count"),
			s.value("eventbus_pending_events"), s.value("eventbus_oldest_pending_age_seconds"), s.value("eventbus_failed_events"))
		return s.value("eventbus_event_latency_seconds_count") >= n &&
			s.value("eventbus_publish_duration_seconds_count") >= n &&
			s.value("eventbus_pending_events") == 0 &&
			s.value("eventbus_oldest_pending_age_seconds") == 0 &&
			s.value("eventbus_failed_events") == 1 &&
			// The relay counts an event once its row is marked, so the row
			// can be seen a moment before the counter moves.
			s.value(`eventbus_events_published_total{event_type="metric.latency"}`) >= n &&
			s.value(`eventbus_events_failed_total{event_type="bad type"}`) == 1, got
	})
	assert.Equal(t, float64(n), s.value(`eventbus_events_published_total{event_type="metric.latency"}`))
	assert.Equal(t, 1.0, s.value(`eventbus_events_failed_total{event_type="bad type"}`))
	assert.Equal(t, 0.0, s.value("eventbus_backfill_in_progress"), "no backfill runs")
	assert.Equal(t, 1.0, s.value("eventbus_ready"))
	assert.Equal(t, 1.0, s.value("eventbus_slot_active"))
	// Latencies are a few seconds at most here; the +Inf bucket holds them all.
	assert.Equal(t, s.value("eventbus_event_latency_seconds_count"), s.value(`eventbus_event_latency_seconds_bucket{le="10"}`),
		"every end-to-end latency is under 10s")

	// The alert rules and the dashboard name only metrics the relay exports
	// (the webhook deliverer's: TestMetricsOfWebhooks).
	used := append(alertMetrics(t), dashboardMetrics(t)...)
	for _, name := range used {
		if strings.HasPrefix(name, "eventbus_webhook_") {
			continue
		}
		assert.True(t, s.families[name], "%s is used in deploy/ but not exported", name)
	}
	relay.requireRunning()
}

func TestMetricsLagRisesWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	// Frequent heartbeats move the slot past WAL written by others once the
	// backlog is delivered.
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_HEARTBEAT_INTERVAL=200ms"))
	ctx := t.Context()
	relay := e.startRelay()
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)
	e.warmUp()

	e.nats.Shutdown()
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusServiceUnavailable)
	// Random hex, so that TOAST compression leaves about 4 KiB of WAL per event.
	const n, size = 200, 4096
	for i := range n {
		e.publish(ctx, "metric.lag", fmt.Sprintf("g-%d", i), fmt.Sprintf(`{"blob":%q}`, randomHex(t, size)))
	}
	down := waitMetrics(t, 30*time.Second, addr, func(s scrape) (bool, string) {
		lag, pending := s.value("eventbus_replication_lag_bytes"), s.value("eventbus_pending_events")
		return lag > n*size/2 && pending == n && s.value("eventbus_oldest_pending_age_seconds") > 0,
			fmt.Sprintf("while NATS is down: lag %v bytes, %v pending", lag, pending)
	})
	lagDown := down.value("eventbus_replication_lag_bytes")
	t.Logf("while NATS was down: lag %.0f bytes, %.0f pending, oldest %.1fs", lagDown,
		down.value("eventbus_pending_events"), down.value("eventbus_oldest_pending_age_seconds"))

	require.NoError(t, e.nats.Restart())
	e.waitProcessed(n+1, 60*time.Second)
	const small = 256 * 1024
	up := waitMetrics(t, 60*time.Second, addr, func(s scrape) (bool, string) {
		lag, pending := s.value("eventbus_replication_lag_bytes"), s.value("eventbus_pending_events")
		return lag >= 0 && lag < small && pending == 0,
			fmt.Sprintf("after NATS restarted: lag %v bytes (was %v), %v pending", lag, lagDown, pending)
	})
	t.Logf("after NATS restarted: lag %.0f bytes", up.value("eventbus_replication_lag_bytes"))
	assert.GreaterOrEqual(t, up.value("eventbus_event_latency_seconds_count"), float64(n+1))
	relay.requireRunning()
}

// randomHex returns n random hex digits.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)[:n]
}

// metricName matches the relay's metric names in PromQL.
var metricName = regexp.MustCompile(`\beventbus_[a-z0-9_]+`)

// exportedName maps a series name in PromQL to its metric family.
func exportedName(series string) string {
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && strings.HasSuffix(base, "_seconds") {
			return base
		}
	}
	return series
}

func metricsIn(expr string) []string {
	var names []string
	for _, m := range metricName.FindAllString(expr, -1) {
		names = append(names, exportedName(m))
	}
	return names
}

// alertRules is the part of a Prometheus rule file these tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// alertMetrics checks deploy/prometheus/alerts.yml and returns the metric
// names its expressions use.
func alertMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", "alerts.yml"))
	require.NoError(t, err)
	var f alertRules
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&f), "alerts.yml")
	require.Len(t, f.Groups, 1)
	require.Equal(t, "eventbus", f.Groups[0].Name)
	var names, alerts []string
	for _, r := range f.Groups[0].Rules {
		alerts = append(alerts, r.Alert)
		used := metricsIn(r.Expr)
		require.NotEmpty(t, used, "alert %s: expr %q names no eventbus metric", r.Alert, r.Expr)
		names = append(names, used...)
		assert.NotEmpty(t, r.Annotations["summary"], "alert %s: summary", r.Alert)
		assert.Contains(t, r.Annotations["description"], "README", "alert %s: the description points at a runbook", r.Alert)
		assert.NotEmpty(t, r.Labels["severity"], "alert %s: severity", r.Alert)
		if r.For != "" {
			_, err := time.ParseDuration(r.For)
			assert.NoError(t, err, "alert %s: for", r.Alert)
		}
	}
	for _, want := range []string{"EventbusReplicationLagHigh", "EventbusOldestPendingTooOld", "EventbusFailedEvents",
		"EventbusSlotInactive", "EventbusRelayNotReady"} {
		assert.Contains(t, alerts, want)
	}
	return names
}

// dashboardMetrics checks deploy/grafana/eventbus.json and returns the
// metric names its queries use.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "eventbus.json"))
	require.NoError(t, err)
	var d struct {
		SchemaVersion int `json:"schemaVersion"`
		UID           string
		Panels        []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(b, &d), "eventbus.json")
	assert.GreaterOrEqual(t, d.SchemaVersion, 36)
	var vars []string
	var names []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Type+":"+v.Name)
		names = append(names, metricsIn(v.Definition)...)
	}
	assert.Contains(t, vars, "datasource:datasource", "a Prometheus data source variable")
	require.NotEmpty(t, d.Panels)
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, "panel %q", p.Title)
		for _, q := range p.Targets {
			used := metricsIn(q.Expr)
			require.NotEmpty(t, used, "panel %q: expr %q names no eventbus metric", p.Title, q.Expr)
			names = append(names, used...)
		}
	}
	for _, want := range []string{"eventbus_replication_lag_bytes", "eventbus_event_latency_seconds",
		"eventbus_pending_events", "eventbus_oldest_pending_age_seconds", "eventbus_inflight_events"} {
		assert.True(t, slices.Contains(names, want), "the dashboard shows %s", want)
	}
	return names
}

// TestMetricsDeployFiles checks the syntax of the alert rules and the dashboard
// without a relay; TestMetricsLatencyAndBacklog checks their metric names
// against a running one.
func TestMetricsDeployFiles(t *testing.T) {
	t.Parallel()
	assert.NotEmpty(t, alertMetrics(t))
	assert.NotEmpty(t, dashboardMetrics(t))
}

// The deliverer's metrics: attempts by endpoint and result, their duration,
// and the age of the oldest delivery still pending per endpoint; the alert
// rules' webhook metrics are among them.
func TestMetricsOfWebhooks(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	// One retry after an hour: the delivery stays pending after its first attempt.
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true", "EVENTBUS_WEBHOOK_RETRY_BASE=1h"))
	ctx := t.Context()
	ok := newHookReceiver(t, nil)
	down := newHookReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	okID, _ := e.addWebhook("--url", ok.srv.URL)
	downID, _ := e.addWebhook("--url", down.srv.URL)
	e.startRelay()
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)
	e.waitWebhookConsumer()
	e.publish(ctx, "order.placed", "o-1", `{}`)

	s := waitMetrics(t, 60*time.Second, addr, func(s scrape) (bool, string) {
		delivered := s.value(`eventbus_webhook_attempts_total{result="delivered",webhook="` + okID + `"}`)
		retry := s.value(`eventbus_webhook_attempts_total{result="retry",webhook="` + downID + `"}`)
		age := s.value(`eventbus_webhook_oldest_pending_seconds{webhook="` + downID + `"}`)
		// The ages are read at most every 5 s: the delivered endpoint's
		// series goes once a read follows its delivery (-1: no series).
		okAge := s.value(`eventbus_webhook_oldest_pending_seconds{webhook="` + okID + `"}`)
		return delivered == 1 && retry == 1 && age > 0 && okAge == -1,
			fmt.Sprintf("delivered %v, retry %v, oldest pending %v (the delivered endpoint's: %v)", delivered, retry, age, okAge)
	})
	assert.Equal(t, 2.0, s.value("eventbus_webhook_attempt_duration_seconds_count"))
	for _, name := range append(alertMetrics(t), dashboardMetrics(t)...) {
		if strings.HasPrefix(name, "eventbus_webhook_") {
			assert.True(t, s.families[name], "%s is used in deploy/ but not exported", name)
		}
	}
}

// `eventbus deliver` alone serves /readyz and its own /metrics: the
// deliveries it made, by endpoint and result.
func TestMetricsOfDeliverAlone(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_WEBHOOKS=false", "EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true"))
	ctx := t.Context()
	ok := newHookReceiver(t, nil)
	okID, _ := e.addWebhook("--url", ok.srv.URL)
	e.startRelay()
	e.startCommand("deliver", "EVENTBUS_HTTP_ADDR="+addr)
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)
	e.waitWebhookConsumer()
	e.publish(ctx, "order.placed", "o-1", `{}`)
	waitMetrics(t, 60*time.Second, addr, func(s scrape) (bool, string) {
		delivered := s.value(`eventbus_webhook_attempts_total{result="delivered",webhook="` + okID + `"}`)
		return delivered == 1 && s.families["process_cpu_seconds_total"],
			fmt.Sprintf("delivered %v, process metrics %v", delivered, s.families["process_cpu_seconds_total"])
	})
}

package relay

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxEventTypeLabels bounds the event_type label values: event types are
// user data, and each value is a time series. Types past the cap count as "other".
const maxEventTypeLabels = 200

// Metrics are the relay's Prometheus metrics.
type Metrics struct {
	reg        prometheus.Registerer
	published  *prometheus.CounterVec
	failed     *prometheus.CounterVec
	retried    *prometheus.CounterVec
	inflight   prometheus.Gauge
	backfilled prometheus.Counter
	skipped    prometheus.Counter

	mu    sync.Mutex
	types map[string]struct{}
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_events_published_total",
			Help: "Events acked by JetStream and marked processed.",
		}, []string{"event_type"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_events_failed_total",
			Help: "Events marked failed after their retries were used up.",
		}, []string{"event_type"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_event_attempts_failed_total",
			Help: "Per-event delivery attempts that failed (each increments retry_count).",
		}, []string{"event_type"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventbus_inflight_events",
			Help: "Events published and not yet acked.",
		}),
		backfilled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_backfill_events_total",
			Help: "Pending rows read by backfills (new slot or unfinished backfill).",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_catchup_skipped_total",
			Help: "Events seen again after a restart and skipped because their rows were already processed or failed.",
		}),
		types: make(map[string]struct{}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.failed, m.retried, m.inflight, m.backfilled, m.skipped)
	}
	return m
}

func (m *Metrics) eventType(t string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.types[t]; ok {
		return t
	}
	if len(m.types) >= maxEventTypeLabels {
		return "other"
	}
	m.types[t] = struct{}{}
	return t
}

const lagSQL = `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::float8, active
FROM pg_replication_slots WHERE slot_name = $1`

// registerSlotGauges adds the gauges read from pg_replication_slots at scrape time.
func (r *Relay) registerSlotGauges() {
	if r.m.reg == nil {
		return
	}
	query := func() (lag float64, active bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := r.pool.QueryRow(ctx, lagSQL, r.opts.Slot).Scan(&lag, &active); err != nil {
			return math.NaN(), false
		}
		return lag, active
	}
	r.m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventbus_replication_lag_bytes",
			Help: "WAL bytes between the server's current position and the slot's confirmed flush position.",
		}, func() float64 { lag, _ := query(); return lag }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventbus_slot_active",
			Help: "1 when a walsender is streaming from the slot.",
		}, func() float64 {
			if _, active := query(); active {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventbus_ready",
			Help: "1 when this relay is streaming from the slot and NATS is connected.",
		}, func() float64 {
			if r.Ready() {
				return 1
			}
			return 0
		}),
	)
}

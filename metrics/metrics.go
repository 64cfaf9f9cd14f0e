// Package metrics is what eventbus exports to Prometheus: the relay's
// counters and histograms, which its stages observe through the methods
// below (they never touch a Prometheus type), and the gauges read at scrape
// time from the owners of the data (cdc.InspectSlot for the slot,
// outbox.Store.Backlog for event_bus), cached so that one scrape, or several
// Prometheus servers, cost one query.
package metrics

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/outbox"
)

// maxEventTypeLabels bounds the event_type label values: event types are
// user data, and each value is a time series. Types past the cap count as "other".
const maxEventTypeLabels = 200

// Relay holds the relay's metrics. A nil registerer (NewRelay(nil)) keeps
// them unregistered, for tests and tools.
type Relay struct {
	reg         prometheus.Registerer
	published   *prometheus.CounterVec
	failed      *prometheus.CounterVec
	retried     *prometheus.CounterVec
	inflight    prometheus.Gauge
	backfilled  prometheus.Counter
	backfilling prometheus.Gauge
	skipped     prometheus.Counter
	holds       prometheus.Counter
	stepdowns   prometheus.Counter
	latency     prometheus.Histogram
	publishDur  prometheus.Histogram
	statusWrite prometheus.Histogram

	mu    sync.Mutex
	types map[string]struct{}
}

// NewRelay creates the relay's metrics and registers them with reg (nil: not registered).
func NewRelay(reg prometheus.Registerer) *Relay {
	m := &Relay{
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
		backfilling: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventbus_backfill_in_progress",
			Help: "1 from the start of a backfill until its completion is recorded (or its session ends).",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_catchup_skipped_total",
			Help: "Events seen again after a restart and skipped because their rows were already processed or failed.",
		}),
		holds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_publish_holds_total",
			Help: "Times the relay held the changes it received under load (above 3,000 transactions a second) for up to EVENTBUS_PUBLISH_LINGER, to publish them to NATS together.",
		}),
		stepdowns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_stream_leader_stepdowns_total",
			Help: "Times the relay made the stream's leader step down because it kept answering that an event was in process (a clustered stream after a leader change).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventbus_event_latency_seconds",
			Help: "Time from the commit of an event's transaction (Postgres clock) to its PubAck (relay clock). " +
				"Includes any outage while the event waited. Backfilled and redriven events are not observed: " +
				"their transaction's commit time is unknown or not theirs.",
			Buckets: latencyBuckets,
		}),
		publishDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eventbus_publish_duration_seconds",
			Help:    "Time from an event's publish call to its PubAck, as seen by the acker (which waits for acks in publish order).",
			Buckets: publishBuckets,
		}),
		statusWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventbus_status_write_duration_seconds",
			Help: "Time to mark one batch of acked events processed (one UPDATE, more when rows are not visible yet). " +
				"While every status writer is busy, publishing waits: when this grows, the database is the bottleneck.",
			Buckets: publishBuckets,
		}),
		types: make(map[string]struct{}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.failed, m.retried, m.inflight, m.backfilled, m.backfilling,
			m.skipped, m.holds, m.stepdowns, m.latency, m.publishDur, m.statusWrite)
	}
	return m
}

var (
	// latencyBuckets reach an hour: after an outage events wait long, and
	// the histogram should show how long rather than pile up in +Inf.
	latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	publishBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

func (m *Relay) eventType(t string) string {
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

// Published counts an event acked by JetStream and marked processed.
func (m *Relay) Published(eventType string) {
	m.published.WithLabelValues(m.eventType(eventType)).Inc()
}

// AttemptFailed counts a failed delivery attempt (retry_count+1).
func (m *Relay) AttemptFailed(eventType string) {
	m.retried.WithLabelValues(m.eventType(eventType)).Inc()
}

// Failed counts an event marked failed, its retries used up.
func (m *Relay) Failed(eventType string) {
	m.failed.WithLabelValues(m.eventType(eventType)).Inc()
}

// Sent counts an event published and not yet acked; Acked or Unsent ends it.
func (m *Relay) Sent() { m.inflight.Inc() }

// Unsent ends a Sent event whose PubAck the acker has stopped waiting for.
func (m *Relay) Unsent() { m.inflight.Dec() }

// Backfilling says whether a backfill is in progress.
func (m *Relay) Backfilling(on bool) {
	if on {
		m.backfilling.Set(1)
	} else {
		m.backfilling.Set(0)
	}
}

// Backfilled counts a pending row read by a backfill.
func (m *Relay) Backfilled() { m.backfilled.Inc() }

// CatchUpSkipped counts an event seen again after a restart and skipped.
func (m *Relay) CatchUpSkipped() { m.skipped.Inc() }

// Held counts one hold of the dispatcher's linger.
func (m *Relay) Held() { m.holds.Inc() }

// LeaderSteppedDown counts a stream leader the relay made step down.
func (m *Relay) LeaderSteppedDown() { m.stepdowns.Inc() }

// StatusWritten observes how long one status write took.
func (m *Relay) StatusWritten(d time.Duration) { m.statusWrite.Observe(d.Seconds()) }

// Acked observes the latencies of an event published at sent whose PubAck
// arrived at now. committed is its transaction's commit time: zero
// (backfill, redrive) is not observed; a commit time ahead of the relay's
// clock (clock skew) counts as zero latency.
func (m *Relay) Acked(sent, committed, now time.Time) {
	m.publishDur.Observe(max(now.Sub(sent), 0).Seconds())
	if !committed.IsZero() {
		m.latency.Observe(max(now.Sub(committed), 0).Seconds())
	}
}

// scrapeTTL is how long one query's result serves the gauges read from it,
// so that the gauges of one scrape, and scrapes by several Prometheus
// servers, share a query.
const scrapeTTL = time.Second

// scrapeTimeout bounds a query run at scrape time.
const scrapeTimeout = 2 * time.Second

// cached holds the result of load for ttl. Concurrent callers wait for one
// load instead of running their own; errors are cached too, so a database
// that is down costs one timeout per ttl, not one per gauge.
type cached[T any] struct {
	ttl  time.Duration
	now  func() time.Time
	load func(context.Context) (T, error)

	mu  sync.Mutex
	at  time.Time
	val T
	err error
}

func newCached[T any](ttl time.Duration, load func(context.Context) (T, error)) *cached[T] {
	return &cached[T]{ttl: ttl, now: time.Now, load: load}
}

func (c *cached[T]) get() (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || c.now().Sub(c.at) >= c.ttl {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		c.val, c.err = c.load(ctx)
		cancel()
		c.at = c.now()
	}
	return c.val, c.err
}

// ObserveDatabase adds the gauges read from the database at scrape time:
// the slot's state (cdc.InspectSlot) and the backlog of event_bus
// (outbox.Store.Backlog). Their owners run the queries; the gauges only
// read the results, cached for scrapeTTL. Gauges read NaN when their query
// fails.
func (m *Relay) ObserveDatabase(db cdc.Querier, slotName string, store *outbox.Store, ready func() bool) {
	if m.reg == nil {
		return
	}
	slot := newCached(scrapeTTL, func(ctx context.Context) (cdc.SlotInfo, error) {
		return cdc.InspectSlot(ctx, db, slotName)
	})
	rows := newCached(scrapeTTL, store.Backlog)
	gauge := func(name, help string, value func() float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value)
	}
	fromBacklog := func(field func(outbox.Backlog) float64) func() float64 {
		return func() float64 {
			b, err := rows.get()
			if err != nil {
				return math.NaN()
			}
			return field(b)
		}
	}
	m.reg.MustRegister(
		gauge("eventbus_replication_lag_bytes",
			"WAL bytes between the server's current position and the slot's confirmed flush position.",
			func() float64 {
				s, err := slot.get()
				if err != nil || s.LagBytes == nil {
					return math.NaN()
				}
				return float64(*s.LagBytes)
			}),
		gauge("eventbus_slot_active",
			"1 when a walsender is streaming from the slot.",
			func() float64 {
				if s, err := slot.get(); err == nil && s.Active {
					return 1
				}
				return 0
			}),
		gauge("eventbus_ready",
			"1 when this relay is streaming from the slot and NATS is connected.",
			func() float64 {
				if ready() {
					return 1
				}
				return 0
			}),
		gauge("eventbus_pending_events",
			"Rows of event_bus with status pending.",
			fromBacklog(func(b outbox.Backlog) float64 { return b.Pending })),
		gauge("eventbus_oldest_pending_age_seconds",
			"Age (database now() minus created_at, or minus deliver_at for a delayed event) of the oldest pending row of event_bus that is due; 0 when none is.",
			fromBacklog(func(b outbox.Backlog) float64 { return b.OldestPendingAge })),
		gauge("eventbus_failed_events",
			"Rows of event_bus with status failed (retries used up; see the Failed events runbook).",
			fromBacklog(func(b outbox.Backlog) float64 { return b.Failed })),
	)
}

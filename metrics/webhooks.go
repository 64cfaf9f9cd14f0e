package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxWebhookLabels bounds the webhook label values: endpoints are user
// data. Endpoints past the cap count as "other".
const maxWebhookLabels = 100

// Webhooks holds the webhook deliverer's metrics.
type Webhooks struct {
	deliveries *prometheus.CounterVec
	duration   prometheus.Histogram

	mu  sync.Mutex
	ids map[string]struct{}
}

// NewWebhooks creates the deliverer's metrics and registers them with reg
// (nil: not registered). oldest, when not nil, reports at scrape time the
// age of the oldest pending delivery per endpoint (at most
// maxWebhookLabels of them, the oldest first).
func NewWebhooks(reg prometheus.Registerer, oldest func(ctx context.Context, limit int) (map[string]time.Duration, error)) *Webhooks {
	m := &Webhooks{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_webhook_attempts_total",
			Help: "Webhook delivery attempts by endpoint (webhook id; past 100 endpoints: other) and result: " +
				"delivered (a 2xx), retry (another answer or none; tried again later), failed (attempts used up, or 410 Gone).",
		}, []string{"webhook", "result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eventbus_webhook_attempt_duration_seconds",
			Help:    "Time from sending a webhook request to its answer (or the error that ended it).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		ids: make(map[string]struct{}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.duration)
		if oldest != nil {
			reg.MustRegister(&pendingAge{oldest: oldest})
		}
	}
	return m
}

// Attempted counts one attempt of an endpoint's delivery.
func (m *Webhooks) Attempted(webhookID, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(m.label(webhookID), result).Inc()
	m.duration.Observe(took.Seconds())
}

func (m *Webhooks) label(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ids[id]; ok {
		return id
	}
	if len(m.ids) >= maxWebhookLabels {
		return "other"
	}
	m.ids[id] = struct{}{}
	return id
}

var pendingAgeDesc = prometheus.NewDesc("eventbus_webhook_oldest_pending_seconds",
	"Age of the oldest delivery not yet delivered, per endpoint (the 100 endpoints with the oldest).", []string{"webhook"}, nil)

// pendingAge reads the oldest pending deliveries when scraped, at most
// every few seconds whatever the number of scrapers.
type pendingAge struct {
	oldest func(ctx context.Context, limit int) (map[string]time.Duration, error)

	mu     sync.Mutex
	at     time.Time
	cached map[string]time.Duration
}

func (p *pendingAge) Describe(ch chan<- *prometheus.Desc) { ch <- pendingAgeDesc }

func (p *pendingAge) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	if time.Since(p.at) > 5*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ages, err := p.oldest(ctx, maxWebhookLabels); err == nil {
			p.cached, p.at = ages, time.Now()
		}
		cancel()
	}
	ages := p.cached
	p.mu.Unlock()
	for id, age := range ages {
		ch <- prometheus.MustNewConstMetric(pendingAgeDesc, prometheus.GaugeValue, age.Seconds(), id)
	}
}

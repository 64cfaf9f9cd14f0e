package monitor

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/outbox"
)

// analyticsWindow is one window of GET /api/analytics and its buckets: few
// enough for a chart (24 to 60), each a whole unit people read (a minute, an
// hour, a quarter of a day, a UTC day).
type analyticsWindow struct {
	bucket time.Duration
	n      int
}

var analyticsWindows = map[string]analyticsWindow{
	"1h":  {time.Minute, 60},
	"24h": {time.Hour, 24},
	"7d":  {6 * time.Hour, 28},
	"30d": {24 * time.Hour, 30},
}

// busiestTop is how many aggregates and organizations the analytics rank.
const busiestTop = 10

// statusCounts are events by status, and their sum.
type statusCounts struct {
	Pending    int `json:"pending"`
	Processing int `json:"processing"`
	Processed  int `json:"processed"`
	Failed     int `json:"failed"`
	Total      int `json:"total"`
}

func (c *statusCounts) add(t outbox.TypeCounts) {
	c.Pending += t.Pending
	c.Processing += t.Processing
	c.Processed += t.Processed
	c.Failed += t.Failed
	c.Total += t.Pending + t.Processing + t.Processed + t.Failed
}

// failureRate is the share of the events whose delivery ended (processed or
// failed) that failed; 0 when none ended. Pending events are not counted:
// they have not failed, nor succeeded yet.
func (c statusCounts) failureRate() float64 {
	if c.Processed+c.Failed == 0 {
		return 0
	}
	return float64(c.Failed) / float64(c.Processed+c.Failed)
}

type typeCounts struct {
	EventType string `json:"event_type"`
	statusCounts
}

type typeTotals struct {
	typeCounts
	FailureRate float64 `json:"failure_rate"`
}

type analyticsBucket struct {
	Start time.Time    `json:"start"`
	Types []typeCounts `json:"types"`
}

// latencyMillis is the delivery latency of processed events in
// milliseconds: created_at (the publishing transaction's start) to
// processed_at (the relay marked it after JetStream's ack).
type latencyMillis struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
}

type aggregateCount struct {
	AggregateType string `json:"aggregate_type"`
	AggregateID   string `json:"aggregate_id"`
	Count         int    `json:"count"`
}

type organizationCount struct {
	OrganizationID *string `json:"organization_id"` // null: events without one
	Count          int     `json:"count"`
}

// analyticsResponse is GET /api/analytics: the events created in [since,
// until) as the caller may see them.
type analyticsResponse struct {
	Window        string            `json:"window"`
	Since         time.Time         `json:"since"`
	Until         time.Time         `json:"until"`
	BucketSeconds int               `json:"bucket_seconds"`
	Buckets       []analyticsBucket `json:"buckets"`
	// EventTypes are the window's totals per type, most events first.
	EventTypes           []typeTotals        `json:"event_types"`
	Totals               statusCounts        `json:"totals"`
	FailureRate          float64             `json:"failure_rate"`
	LatencyMS            latencyMillis       `json:"latency_ms"`
	BusiestAggregates    []aggregateCount    `json:"busiest_aggregates"`
	BusiestOrganizations []organizationCount `json:"busiest_organizations"`
}

// analytics serves GET /api/analytics?window=1h|24h|7d|30d (24h by
// default), in the caller's RLS transaction: an organization's admin counts
// only their organization's events.
func (s *Server) analytics(r *http.Request, c caller) (int, any, error) {
	name := strings.TrimSpace(r.URL.Query().Get("window"))
	if name == "" {
		name = "24h"
	}
	w, ok := analyticsWindows[name]
	if !ok {
		return 0, nil, badRequest(http.StatusBadRequest, "window %q: want 1h, 24h, 7d or 30d", name)
	}
	var a outbox.Analytics
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		var err error
		a, err = outbox.Analyze(r.Context(), tx, time.Now(), w.bucket, w.n, busiestTop)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, analyticsJSON(name, a), nil
}

func analyticsJSON(window string, a outbox.Analytics) analyticsResponse {
	resp := analyticsResponse{
		Window: window, Since: a.Since, Until: a.Until, BucketSeconds: int(a.Bucket.Seconds()),
		Buckets: make([]analyticsBucket, 0, len(a.Buckets)), EventTypes: []typeTotals{},
		BusiestAggregates: []aggregateCount{}, BusiestOrganizations: []organizationCount{},
	}
	byType := map[string]*typeTotals{}
	for _, b := range a.Buckets {
		jb := analyticsBucket{Start: b.Start, Types: make([]typeCounts, 0, len(b.Types))}
		for _, t := range b.Types {
			tc := typeCounts{EventType: t.EventType}
			tc.add(t)
			jb.Types = append(jb.Types, tc)
			tt := byType[t.EventType]
			if tt == nil {
				tt = &typeTotals{typeCounts: typeCounts{EventType: t.EventType}}
				byType[t.EventType] = tt
			}
			tt.add(t)
			resp.Totals.add(t)
		}
		resp.Buckets = append(resp.Buckets, jb)
	}
	for _, tt := range byType {
		tt.FailureRate = tt.failureRate()
		resp.EventTypes = append(resp.EventTypes, *tt)
	}
	sortTypes(resp.EventTypes)
	resp.FailureRate = resp.Totals.failureRate()
	millis := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	resp.LatencyMS = latencyMillis{Count: a.Latency.Count, P50: millis(a.Latency.P50), P95: millis(a.Latency.P95), P99: millis(a.Latency.P99)}
	for _, ag := range a.BusiestAggregates {
		resp.BusiestAggregates = append(resp.BusiestAggregates, aggregateCount{AggregateType: ag.AggregateType, AggregateID: ag.AggregateID, Count: ag.Count})
	}
	for _, o := range a.BusiestOrganizations {
		oc := organizationCount{Count: o.Count}
		if o.OrganizationID != "" {
			oc.OrganizationID = &o.OrganizationID
		}
		resp.BusiestOrganizations = append(resp.BusiestOrganizations, oc)
	}
	return resp
}

// sortTypes orders types by their number of events, most first, ties by name.
func sortTypes(ts []typeTotals) {
	slices.SortFunc(ts, func(a, b typeTotals) int {
		if c := cmp.Compare(b.Total, a.Total); c != 0 {
			return c
		}
		return strings.Compare(a.EventType, b.EventType)
	})
}

package main

import (
	"fmt"
	"io"
)

// latencySeries is one design at one target rate over all runs.
type latencySeries struct {
	Design     string          `json:"design"`
	TargetRate float64         `json:"target_per_s"`
	Median     latencyResult   `json:"median"`
	Runs       []latencyResult `json:"runs"`
}

func (r *report) addLatency(design string, res latencyResult) {
	if x := r.findLatency(design, res.TargetRate); x != nil {
		x.Runs = append(x.Runs, res)
		return
	}
	r.Latency = append(r.Latency, &latencySeries{Design: design, TargetRate: res.TargetRate, Runs: []latencyResult{res}})
}

// held counts the runs whose writers held the target rate.
func (x *latencySeries) held() int {
	n := 0
	for _, m := range x.Runs {
		if m.Held {
			n++
		}
	}
	return n
}

func (r *report) findLatency(design string, rate float64) *latencySeries {
	for _, x := range r.Latency {
		if x.Design == design && x.TargetRate == rate {
			return x
		}
	}
	return nil
}

// finishLatency takes each column's median on its own, and compares the
// relay with the baseline at every rate both ran.
func (r *report) finishLatency() {
	for _, x := range r.Latency {
		x.Median = latencyResult{
			Events:     int64(median(x.Runs, func(m latencyResult) float64 { return float64(m.Events) })),
			TargetRate: x.TargetRate,
			Achieved:   median(x.Runs, func(m latencyResult) float64 { return m.Achieved }),
			Dropped:    int64(median(x.Runs, func(m latencyResult) float64 { return float64(m.Dropped) })),
			Held:       2*x.held() > len(x.Runs),
			P50:        median(x.Runs, func(m latencyResult) float64 { return m.P50 }),
			P95:        median(x.Runs, func(m latencyResult) float64 { return m.P95 }),
			P99:        median(x.Runs, func(m latencyResult) float64 { return m.P99 }),
			Max:        median(x.Runs, func(m latencyResult) float64 { return m.Max }),
			TxnP99:     median(x.Runs, func(m latencyResult) float64 { return m.TxnP99 }),
			CPU:        medianCost(x.Runs, func(m latencyResult) cpuCost { return m.CPU }),
		}
	}
	for _, relay := range r.Latency {
		base := r.findLatency("baseline-1000", relay.TargetRate)
		if relay.Design != "relay" || base == nil {
			continue
		}
		for _, q := range []struct {
			name string
			f    func(latencyResult) float64
		}{
			{"p50", func(m latencyResult) float64 { return m.P50 }},
			{"p99", func(m latencyResult) float64 { return m.P99 }},
		} {
			r.addRatioOf(fmt.Sprintf("latency %s at %s ev/s: relay / baseline-1000", q.name, thousands(relay.TargetRate)),
				len(relay.Runs), len(base.Runs), func(i int) (float64, float64) { return q.f(relay.Runs[i]), q.f(base.Runs[i]) })
		}
		r.addCPURatios(fmt.Sprintf("latency at %s ev/s: CPU per event", thousands(relay.TargetRate)), len(relay.Runs), len(base.Runs),
			func(i int) cpuCost { return relay.Runs[i].CPU }, func(i int) cpuCost { return base.Runs[i].CPU })
		if floor := r.findLatency("floor", relay.TargetRate); floor != nil {
			name := fmt.Sprintf("latency at %s ev/s: CPU per event", thousands(relay.TargetRate))
			r.addCPURatiosAs(name+": relay / floor", len(relay.Runs), len(floor.Runs),
				func(i int) cpuCost { return relay.Runs[i].CPU }, func(i int) cpuCost { return floor.Runs[i].CPU })
			r.addCPURatiosAs(name+": floor / baseline-1000", len(floor.Runs), len(base.Runs),
				func(i int) cpuCost { return floor.Runs[i].CPU }, func(i int) cpuCost { return base.Runs[i].CPU })
		}
	}
}

func (r *report) printLatency(w io.Writer) {
	if len(r.Latency) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| latency | target ev/s | achieved ev/s | rate held | p50 ms | p95 ms | p99 ms | max ms | writer txn p99 ms | p99 ms, each run |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, x := range r.Latency {
		m := x.Median
		fmt.Fprintf(w, "| %s | %s | %s | %d/%d | %.1f | %.1f | %.1f | %.1f | %.1f | %s |\n", x.Design, thousands(x.TargetRate),
			thousands(m.Achieved), x.held(), len(x.Runs), m.P50, m.P95, m.P99, m.Max, m.TxnP99,
			joinRuns(x.Runs, func(m latencyResult) string { return fmt.Sprintf("%.1f", m.P99) }))
	}
}

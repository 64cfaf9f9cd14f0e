package main

import (
	"fmt"
	"io"
)

// backlogSeries is one design's backlog drain over all runs.
type backlogSeries struct {
	Design string          `json:"design"`
	Median backlogResult   `json:"median"`
	Runs   []backlogResult `json:"runs"`
}

func (r *report) addBacklog(design string, res backlogResult) {
	if x := r.findBacklog(design); x != nil {
		x.Runs = append(x.Runs, res)
		return
	}
	r.Backlogs = append(r.Backlogs, &backlogSeries{Design: design, Runs: []backlogResult{res}})
}

func (r *report) findBacklog(design string) *backlogSeries {
	for _, x := range r.Backlogs {
		if x.Design == design {
			return x
		}
	}
	return nil
}

func (r *report) finishBacklog() {
	for _, x := range r.Backlogs {
		x.Median = backlogResult{
			Events:       int64(median(x.Runs, func(m backlogResult) float64 { return float64(m.Events) })),
			InsertRate:   median(x.Runs, func(m backlogResult) float64 { return m.InsertRate }),
			DrainRate:    median(x.Runs, func(m backlogResult) float64 { return m.DrainRate }),
			DrainSeconds: median(x.Runs, func(m backlogResult) float64 { return m.DrainSeconds }),
			PeakRSS:      int64(median(x.Runs, func(m backlogResult) float64 { return float64(m.PeakRSS) })),
			SampledRSS:   int64(median(x.Runs, func(m backlogResult) float64 { return float64(m.SampledRSS) })),
			CPUSeconds:   median(x.Runs, func(m backlogResult) float64 { return m.CPUSeconds }),
			CPUPercent:   median(x.Runs, func(m backlogResult) float64 { return m.CPUPercent }),
			CPU:          medianCost(x.Runs, func(m backlogResult) cpuCost { return m.CPU }),
			SpilledBytes: int64(median(x.Runs, func(m backlogResult) float64 { return float64(m.SpilledBytes) })),
		}
	}
	for _, s := range []struct{ suffix, name string }{{"", "backlog"}, {", one transaction", "one-transaction backlog"}} {
		relay, base := r.findBacklog("relay"+s.suffix), r.findBacklog("baseline-1000"+s.suffix)
		if relay == nil || base == nil {
			continue
		}
		r.addRatioOf(s.name+": relay drain / baseline-1000 drain", len(relay.Runs), len(base.Runs),
			func(i int) (float64, float64) { return relay.Runs[i].DrainRate, base.Runs[i].DrainRate })
		r.addCPURatios(s.name+": CPU per event", len(relay.Runs), len(base.Runs),
			func(i int) cpuCost { return relay.Runs[i].CPU }, func(i int) cpuCost { return base.Runs[i].CPU })
	}
}

func (r *report) printBacklog(w io.Writer) {
	if len(r.Backlogs) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| backlog | events | inserted ev/s | drain ev/s | drain s | process peak RSS | process CPU s | process CPU % | spilled by the walsender | drain ev/s, each run |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, x := range r.Backlogs {
		m := x.Median
		rss, cpu, pct := "–", "–", "–"
		if m.PeakRSS > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(m.PeakRSS)/(1<<20))
			cpu, pct = fmt.Sprintf("%.1f", m.CPUSeconds), fmt.Sprintf("%.0f", m.CPUPercent)
		}
		spilled := "–"
		if m.SpilledBytes > 0 {
			spilled = fmt.Sprintf("%.0f MiB", float64(m.SpilledBytes)/(1<<20))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f | %s | %s | %s | %s | %s |\n", x.Design, thousands(float64(m.Events)),
			thousands(m.InsertRate), thousands(m.DrainRate), m.DrainSeconds, rss, cpu, pct, spilled,
			joinRuns(x.Runs, func(m backlogResult) string { return thousands(m.DrainRate) }))
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// measurement is one scenario's outcome in one run. Delivery fields are zero
// for the source scenario, PeakLagBytes is set by burst only.
type measurement struct {
	Events       int64   `json:"events"`
	WriteRate    float64 `json:"written_per_s"`
	DeliveryRate float64 `json:"delivered_per_s,omitempty"`
	DrainSeconds float64 `json:"drain_s,omitempty"`
	PeakLagBytes int64   `json:"peak_lag_bytes,omitempty"`
	// CPU per delivered event (source: per written event), writers' start
	// to the last row marked.
	CPU cpuCost `json:"cpu_us_per_event,omitzero"`
}

// series is one scenario and shape over all runs.
type series struct {
	Scenario string        `json:"scenario"`
	Shape    shape         `json:"shape"`
	Median   measurement   `json:"median"`
	Runs     []measurement `json:"runs"`
}

// ratio is a quotient taken within each run, and its median.
type ratio struct {
	Name   string    `json:"name"`
	Median float64   `json:"median"`
	Runs   []float64 `json:"runs"`
}

type report struct {
	Machine         machineInfo      `json:"machine"`
	Runs            int              `json:"runs"`
	Duration        string           `json:"duration"`
	LatencyDuration string           `json:"latency_duration"`
	LatencyWriters  int              `json:"latency_writers"`
	Backlog         int              `json:"backlog_events"`
	Writers         int              `json:"writers"`
	Scenarios       []string         `json:"scenarios"`
	Series          []*series        `json:"series"`
	Latency         []*latencySeries `json:"latency"`
	Backlogs        []*backlogSeries `json:"backlog"`
	Ratios          []ratio          `json:"ratios"`
}

func newReport(o options, m machineInfo) *report {
	return &report{Machine: m, Runs: o.runs, Duration: o.duration.String(), LatencyDuration: o.latencyDuration.String(),
		LatencyWriters: o.latencyWriters, Backlog: o.backlog, Writers: o.writers, Scenarios: o.scenarios}
}

func (r *report) add(scenario string, s shape, m measurement) {
	for _, x := range r.Series {
		if x.Scenario == scenario && x.Shape == s {
			x.Runs = append(x.Runs, m)
			return
		}
	}
	r.Series = append(r.Series, &series{Scenario: scenario, Shape: s, Runs: []measurement{m}})
}

func (r *report) find(scenario string, s shape) *series {
	for _, x := range r.Series {
		if x.Scenario == scenario && x.Shape == s {
			return x
		}
	}
	return nil
}

// finish computes the medians and the within-run ratios.
func (r *report) finish() {
	for _, x := range r.Series {
		x.Median = measurement{
			Events:       int64(median(x.Runs, func(m measurement) float64 { return float64(m.Events) })),
			WriteRate:    median(x.Runs, func(m measurement) float64 { return m.WriteRate }),
			DeliveryRate: median(x.Runs, func(m measurement) float64 { return m.DeliveryRate }),
			DrainSeconds: median(x.Runs, func(m measurement) float64 { return m.DrainSeconds }),
			PeakLagBytes: int64(median(x.Runs, func(m measurement) float64 { return float64(m.PeakLagBytes) })),
			CPU:          medianCost(x.Runs, func(m measurement) cpuCost { return m.CPU }),
		}
	}
	r.Ratios = nil
	for _, s := range shapes {
		burst := r.find("burst", s)
		if burst == nil {
			continue
		}
		delivered := func(m measurement) float64 { return m.DeliveryRate }
		written := func(m measurement) float64 { return m.WriteRate }
		r.addRatio(fmt.Sprintf("%s: relay delivered / baseline-1000 delivered", s), burst, delivered, r.find("baseline-1000", s), delivered)
		r.addRatio(fmt.Sprintf("%s: relay delivered / baseline-100 delivered", s), burst, delivered, r.find("baseline-100", s), delivered)
		r.addRatio(fmt.Sprintf("%s: relay delivered / writers' rate with relay", s), burst, delivered, burst, written)
		r.addRatio(fmt.Sprintf("%s: writers' rate with relay / without (source)", s), burst, written, r.find("source", s), written)
		if base := r.find("baseline-1000", s); base != nil {
			r.addCPURatios(fmt.Sprintf("%s: CPU per event", s), len(burst.Runs), len(base.Runs),
				func(i int) cpuCost { return burst.Runs[i].CPU }, func(i int) cpuCost { return base.Runs[i].CPU })
		}
		if floor := r.find("burst-floor", s); floor != nil {
			r.addRatio(fmt.Sprintf("%s: writers' rate with floor pipe / without (source)", s), floor, written, r.find("source", s), written)
			r.addRatio(fmt.Sprintf("%s: floor pipe delivered / baseline-1000 delivered", s), floor, delivered, r.find("baseline-1000", s), delivered)
			r.addCPURatiosAs(fmt.Sprintf("%s: CPU per event: relay / floor", s), len(burst.Runs), len(floor.Runs),
				func(i int) cpuCost { return burst.Runs[i].CPU }, func(i int) cpuCost { return floor.Runs[i].CPU })
		}
	}
	if on, off := r.find("burst-webhooks-on", single), r.find("burst-webhooks-off", single); on != nil && off != nil {
		delivered := func(m measurement) float64 { return m.DeliveryRate }
		r.addRatio("single: relay delivered, webhooks on / off", on, delivered, off, delivered)
		r.addCPURatiosAs("single: CPU per event, webhooks on / off", len(on.Runs), len(off.Runs),
			func(i int) cpuCost { return on.Runs[i].CPU }, func(i int) cpuCost { return off.Runs[i].CPU })
	}
	r.finishLatency()
	r.finishBacklog()
}

func (r *report) addRatio(name string, num *series, nf func(measurement) float64, den *series, df func(measurement) float64) {
	if num == nil || den == nil {
		return
	}
	r.addRatioOf(name, len(num.Runs), len(den.Runs), func(i int) (float64, float64) { return nf(num.Runs[i]), df(den.Runs[i]) })
}

// addRatioOf adds the ratio num/den of run i, for the runs both sides have.
func (r *report) addRatioOf(name string, nNum, nDen int, run func(i int) (num, den float64)) {
	q := ratio{Name: name}
	for i := range min(nNum, nDen) {
		if n, d := run(i); d > 0 {
			q.Runs = append(q.Runs, n/d)
		}
	}
	if len(q.Runs) == 0 {
		return
	}
	q.Median = median(q.Runs, func(f float64) float64 { return f })
	r.Ratios = append(r.Ratios, q)
}

func median[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func (r *report) printMarkdown(w io.Writer) {
	r.finish()
	fmt.Fprintf(w, "\n%d runs (%s) of %s with %d writers, latency %s at each rate with %d writers, backlog %s events, %d CPUs, %s; %s\n",
		r.Runs, strings.Join(r.Scenarios, ", "), r.Duration, r.Writers, r.LatencyDuration, r.LatencyWriters,
		thousands(float64(r.Backlog)), r.Machine.CPUs, r.Machine.Postgres, r.Machine.NATS)
	r.printThroughput(w)
	r.printLatency(w)
	r.printBacklog(w)
	r.printCPU(w)
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\n| ratio (within each run) | median | each run |")
		fmt.Fprintln(w, "|---|--:|---|")
		for _, q := range r.Ratios {
			fmt.Fprintf(w, "| %s | %.2f | %s |\n", q.Name, q.Median, joinRuns(q.Runs, func(v float64) string { return fmt.Sprintf("%.2f", v) }))
		}
	}
}

// joinRuns formats each run's value: "1.00 / 0.97 / 1.02".
func joinRuns[T any](runs []T, f func(T) string) string {
	parts := make([]string, len(runs))
	for i, x := range runs {
		parts[i] = f(x)
	}
	return strings.Join(parts, " / ")
}

// printThroughput writes the table of the source, baseline and burst
// scenarios.
func (r *report) printThroughput(w io.Writer) {
	if len(r.Series) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| scenario | shape | written ev/s | delivered ev/s | drain s | peak slot lag | delivered ev/s, each run |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|---|")
	for _, x := range r.Series {
		m := x.Median
		each := func(f func(measurement) float64) string {
			return joinRuns(x.Runs, func(m measurement) string { return thousands(f(m)) })
		}
		runs := each(func(m measurement) float64 { return m.DeliveryRate })
		delivered, drain, lag := thousands(m.DeliveryRate), fmt.Sprintf("%.2f", m.DrainSeconds), "–"
		if x.Scenario == "source" {
			runs = "written: " + each(func(m measurement) float64 { return m.WriteRate })
			delivered, drain = "–", "–"
		}
		if strings.HasPrefix(x.Scenario, "burst") && x.Scenario != "burst-floor" { // the floor pipe confirms lazily
			lag = fmt.Sprintf("%.1f MiB", float64(m.PeakLagBytes)/(1<<20))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", x.Scenario, x.Shape, thousands(m.WriteRate), delivered, drain, lag, runs)
	}
}

func (r *report) writeJSON(path string) error {
	r.finish()
	b, err := json.MarshalIndent(struct {
		*report
		Generated time.Time `json:"generated"`
	}{r, time.Now().UTC()}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// thousands formats a rate as a whole number with thin separators: 12,345.
func thousands(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

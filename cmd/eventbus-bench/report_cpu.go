package main

import (
	"fmt"
	"io"
	"slices"
)

// cpuRow is one design in one measurement of the CPU table.
type cpuRow struct {
	measurement, design string
	median              cpuCost
	runs                []cpuCost
}

// cpuRows lists every measurement's designs next to each other: per shape
// the writers alone, the relay and the baselines; per rate the relay and the
// baseline; the two designs of each backlog.
func (r *report) cpuRows() []cpuRow {
	var rows []cpuRow
	for _, s := range shapes {
		for _, d := range []struct{ scenario, design string }{
			{"source", "writers alone"}, {"burst", "relay"}, {"burst-floor", "floor"}, {"baseline-1000", "baseline-1000"}, {"baseline-100", "baseline-100"},
		} {
			if x := r.find(d.scenario, s); x != nil {
				rows = append(rows, cpuRow{fmt.Sprintf("%s, max rate", s), d.design, x.Median.CPU,
					costs(x.Runs, func(m measurement) cpuCost { return m.CPU })})
			}
		}
	}
	var rates []float64
	for _, x := range r.Latency {
		if !slices.Contains(rates, x.TargetRate) {
			rates = append(rates, x.TargetRate)
		}
	}
	slices.Sort(rates)
	for _, rate := range rates {
		for _, design := range []string{"relay", "floor", "baseline-1000"} {
			if x := r.findLatency(design, rate); x != nil {
				rows = append(rows, cpuRow{fmt.Sprintf("latency, %s ev/s", thousands(rate)), design, x.Median.CPU,
					costs(x.Runs, func(m latencyResult) cpuCost { return m.CPU })})
			}
		}
	}
	for _, shape := range []struct{ suffix, name string }{{"", "backlog"}, {", one transaction", "backlog in one transaction"}} {
		for _, design := range []string{"relay", "baseline-1000"} {
			if x := r.findBacklog(design + shape.suffix); x != nil {
				rows = append(rows, cpuRow{fmt.Sprintf("%s, %s", shape.name, thousands(float64(r.Backlog))), design, x.Median.CPU,
					costs(x.Runs, func(m backlogResult) cpuCost { return m.CPU })})
			}
		}
	}
	return rows
}

func costs[T any](runs []T, f func(T) cpuCost) []cpuCost {
	out := make([]cpuCost, len(runs))
	for i, x := range runs {
		out[i] = f(x)
	}
	return out
}

// medianCost takes the median of each component on its own, and of the
// total.
func medianCost[T any](xs []T, f func(T) cpuCost) cpuCost {
	of := func(g func(cpuCost) float64) float64 { return median(xs, func(x T) float64 { return g(f(x)) }) }
	return cpuCost{
		Deliverer: of(func(c cpuCost) float64 { return c.Deliverer }),
		Walsender: of(func(c cpuCost) float64 { return c.Walsender }),
		Backends:  of(func(c cpuCost) float64 { return c.Backends }),
		OtherPG:   of(func(c cpuCost) float64 { return c.OtherPG }),
		NATS:      of(func(c cpuCost) float64 { return c.NATS }),
		Total:     of(func(c cpuCost) float64 { return c.Total }),
		Writers:   of(func(c cpuCost) float64 { return c.Writers }),
	}
}

// printCPU writes the table of CPU per delivered event, per component.
func (r *report) printCPU(w io.Writer) {
	rows := r.cpuRows()
	if len(rows) == 0 {
		return
	}
	us := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	pg := func(v float64) string {
		if !r.Machine.PostgresCPU {
			return "n/m"
		}
		return us(v)
	}
	fmt.Fprintln(w, "\n| CPU µs/event | design | relay / poller | walsender | its backends | other Postgres | NATS | total | total, each run |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|---|")
	for _, x := range rows {
		c := x.median
		proc, walsender, backends, nats := us(c.Deliverer), pg(c.Walsender), pg(c.Backends), us(c.NATS)
		switch x.design {
		case "writers alone":
			proc, walsender, backends = "–", "–", "–"
		case "baseline-1000", "baseline-100":
			walsender = "–"
		case "floor":
			backends = "–"
		}
		if !r.Machine.NATSCPU {
			nats = "n/m"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x.measurement, x.design, proc, walsender, backends,
			pg(c.OtherPG), nats, us(c.Total), joinRuns(x.runs, func(c cpuCost) string { return us(c.Total) }))
	}
	fmt.Fprintln(w, "\nCPU per delivered event (writers alone: per written event), in µs, from the writers' start (backlog: the deliverer's) to the last row marked processed; "+
		"other Postgres is the cluster beyond the writers', the walsender's and the deliverer's backends. The writers' own backends are not counted (`writers_backends` in the JSON).")
	if !r.Machine.NATSCPU {
		fmt.Fprintf(w, "NATS (%s): n/m, the totals leave it out; -nats-bin runs it as a child process and measures it.\n", r.Machine.NATS)
	}
	if !r.Machine.PostgresCPU {
		fmt.Fprintln(w, "Postgres does not run on this host: n/m, the totals leave it out.")
	}
}

// addCPURatios compares the relay's CPU per event with the baseline's, in
// total and beyond the deliverer's own process (what it costs Postgres and
// NATS), within each run.
func (r *report) addCPURatios(name string, n, nDen int, relay, base func(i int) cpuCost) {
	r.addCPURatiosAs(name+": relay / baseline-1000", n, nDen, relay, base)
}

// addCPURatiosAs adds the ratios of total CPU and of the CPU beyond the
// deliverer's process, under name.
func (r *report) addCPURatiosAs(name string, n, nDen int, num, den func(i int) cpuCost) {
	r.addRatioOf(name+", total", n, nDen, func(i int) (float64, float64) {
		return num(i).Total, den(i).Total
	})
	r.addRatioOf(name+", beyond the relay / poller process", n, nDen, func(i int) (float64, float64) {
		return num(i).Total - num(i).Deliverer, den(i).Total - den(i).Deliverer
	})
	r.addRatioOf(name+", the relay / poller process", n, nDen, func(i int) (float64, float64) {
		return num(i).Deliverer, den(i).Deliverer
	})
}

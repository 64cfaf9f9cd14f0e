package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The application_name of every pool that touches the database during a
// measurement, so that a sample can tell their backends apart in
// pg_stat_activity. The relay's replication connection names itself
// "eventbus" (cdc/stream.go); it is found as the slot's active_pid instead.
const (
	relayAppName    = "eventbus-relay"    // the relay's pooled connections (status writes, lookups)
	baselineAppName = "eventbus-baseline" // the polling baseline's connection
	writersAppName  = "eventbus-writers"  // the writers: the load, not a cost of delivery
	benchAppName    = "eventbus-bench"    // the bench's own probes: truncate, lag, settle, these samples
)

// cpuMeter reads the CPU time of every component of a measurement from
// /proc: the deliverer's process, the Postgres cluster's processes (the
// postmaster's children) and a NATS server run as a child process.
type cpuMeter struct {
	pool       *pgxpool.Pool // the bench's own pool (benchAppName)
	postmaster int           // 0: Postgres is not on this host, not measured
	nats       int           // the nats-server child's pid; 0: not measured
}

// deliverer is what delivers the events of a measurement.
type deliverer struct {
	pid     int    // the relay, poller or floor process; 0 while none runs
	appName string // the application_name of its pooled connections; "" for none
	// slot is the replication slot whose walsender serves it; "" for the
	// relay's (a poller has none, and the relay's slot is not active then).
	slot string
	// leavesPending: it marks no row, so a measurement does not wait for
	// the rows to settle (the floor pipe).
	leavesPending bool
}

// role is what a Postgres backend works for.
type role int

const (
	otherRole     role = iota // checkpointer, WAL writer, autovacuum…
	walsenderRole             // the relay's slot's walsender
	delivererRole             // the deliverer's pooled connections
	writersRole
	benchRole
	roleCount
)

// backendCPU is one server process in a sample.
type backendCPU struct {
	role role
	cpu  time.Duration
}

// cpuSample is the CPU time every component has used up to one moment.
type cpuSample struct {
	deliverer time.Duration
	nats      time.Duration
	// cluster is the CPU of the whole Postgres cluster: the postmaster's,
	// its live children's, and (through its cutime and cstime) that of
	// every child it reaped, so that a backend which exits between two
	// samples is not lost from the total.
	cluster  time.Duration
	backends map[int]backendCPU // the postmaster's live children
}

// findPostmaster returns the pid of the postmaster serving pool, or 0 when
// the server does not run on this host: its backend's pid, looked up in
// /proc, must be a postgres process whose parent is one too.
func findPostmaster(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var pid int
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return 0, fmt.Errorf("backend pid: %w", err)
	}
	backend, err := readStat(pid)
	if err != nil || backend.comm != "postgres" {
		return 0, nil
	}
	if pm, err := readStat(backend.ppid); err != nil || pm.comm != "postgres" {
		return 0, nil
	}
	return backend.ppid, nil
}

// findChild returns the pid of this process's only child running the
// executable bin.
func findChild(bin string) (int, error) {
	want, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return 0, err
	}
	kids, err := childrenOf(os.Getpid())
	if err != nil {
		return 0, err
	}
	found := 0
	for pid := range kids {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == want {
			if found != 0 {
				return 0, fmt.Errorf("two child processes run %s", want)
			}
			found = pid
		}
	}
	if found == 0 {
		return 0, fmt.Errorf("no child process runs %s", want)
	}
	return found, nil
}

// activitySQL lists the backends with what tells their roles apart.
const activitySQL = `SELECT pid, coalesce(application_name, ''), coalesce(backend_type, ''),
  pid IN (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL)
FROM pg_stat_activity`

// roleOf tells what a backend works for. Only client backends count for a
// pool: a background process has an empty application_name, as may a
// deliverer's appName ("" for none).
func roleOf(d deliverer, app, backendType string, walsender bool) role {
	switch {
	case walsender:
		return walsenderRole
	case backendType != "client backend" || app == "":
		return otherRole
	case app == d.appName:
		return delivererRole
	case app == writersAppName:
		return writersRole
	case app == benchAppName:
		return benchRole
	}
	return otherRole
}

// sample reads every component's CPU time now.
func (m *cpuMeter) sample(ctx context.Context, d deliverer) (cpuSample, error) {
	var s cpuSample
	var errs []error
	if d.pid != 0 {
		var err error
		s.deliverer, err = procStat{pid: d.pid}.cpu()
		errs = append(errs, err)
	}
	if m.nats != 0 {
		var err error
		s.nats, err = procStat{pid: m.nats}.cpu()
		errs = append(errs, err)
	}
	if m.postmaster != 0 {
		var err error
		s.cluster, s.backends, err = m.sampleCluster(ctx, d)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return cpuSample{}, fmt.Errorf("cpu sample: %w", err)
	}
	return s, nil
}

func (m *cpuMeter) sampleCluster(ctx context.Context, d deliverer) (time.Duration, map[int]backendCPU, error) {
	slot := d.slot
	if slot == "" {
		slot = relaySlot
	}
	rows, err := m.pool.Query(ctx, activitySQL, slot)
	if err != nil {
		return 0, nil, fmt.Errorf("pg_stat_activity: %w", err)
	}
	roleByPID := make(map[int]role)
	var (
		pid         int
		app, typ    string
		isWalsender bool
	)
	_, err = pgx.ForEachRow(rows, []any{&pid, &app, &typ, &isWalsender}, func() error {
		roleByPID[pid] = roleOf(d, app, typ, isWalsender)
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("pg_stat_activity: %w", err)
	}

	pm, err := readStat(m.postmaster)
	if err != nil {
		return 0, nil, fmt.Errorf("postmaster: %w", err)
	}
	kids, err := childrenOf(m.postmaster)
	if err != nil {
		return 0, nil, err
	}
	total := pm.cpu + pm.children
	backends := make(map[int]backendCPU, len(kids))
	for pid, k := range kids {
		total += k.cpu
		backends[pid] = backendCPU{role: roleByPID[pid], cpu: k.cpu}
	}
	return total, backends, nil
}

// cpuCost is the CPU time of each component over one measurement, in
// microseconds per delivered event (per written event for the writers
// alone). Postgres's figures and NATS's are zero when they are not
// measured (machineInfo says which).
type cpuCost struct {
	Deliverer float64 `json:"deliverer"`      // the relay's or the poller's process
	Walsender float64 `json:"walsender"`      // the slot's walsender (relay only)
	Backends  float64 `json:"backends"`       // the deliverer's pooled connections
	OtherPG   float64 `json:"other_postgres"` // the rest of the cluster beyond every backend named here
	NATS      float64 `json:"nats"`
	Total     float64 `json:"total"`            // the five above
	Writers   float64 `json:"writers_backends"` // the inserts themselves: not a cost of delivery, not in the total
}

// costOf is the CPU the components used between samples a and b, per event.
// A backend present in b only started in between (it counts from zero); one
// present in a only exited in between, and its CPU since a is known only to
// the cluster's total, so it lands in OtherPG.
func costOf(a, b cpuSample, events int64) cpuCost {
	if events <= 0 {
		return cpuCost{}
	}
	var byRole [roleCount]time.Duration
	for pid, end := range b.backends {
		start, ok := a.backends[pid]
		r := end.role
		if r == otherRole && ok {
			r = start.role // classified at the start, gone from pg_stat_activity at the end
		}
		if !ok || start.cpu > end.cpu { // new, or the pid was reused
			start.cpu = 0
		}
		byRole[r] += end.cpu - start.cpu
	}
	other := b.cluster - a.cluster
	for r := walsenderRole; r < roleCount; r++ {
		other -= byRole[r]
	}
	per := func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(events) }
	c := cpuCost{
		Deliverer: per(b.deliverer - a.deliverer),
		Walsender: per(byRole[walsenderRole]),
		Backends:  per(byRole[delivererRole]),
		OtherPG:   per(max(0, other)),
		NATS:      per(b.nats - a.nats),
		Writers:   per(byRole[writersRole]),
	}
	c.Total = c.Deliverer + c.Walsender + c.Backends + c.OtherPG + c.NATS
	return c
}

// measureCPU samples every component's CPU before and after f, which runs a
// measurement of d and returns how many events it delivered, and returns
// their cost per event.
func (e *env) measureCPU(ctx context.Context, d deliverer, f func() (int64, error)) (cpuCost, error) {
	start, err := e.cpu.sample(ctx, d)
	if err != nil {
		return cpuCost{}, err
	}
	events, err := f()
	if err != nil {
		return cpuCost{}, err
	}
	end, err := e.cpu.sample(ctx, d)
	if err != nil {
		return cpuCost{}, err
	}
	return costOf(start, end, events), nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procStat reads a child process's memory and CPU from /proc (Linux only).
type procStat struct{ pid int }

// rss returns the resident set now (VmRSS) and its high-water mark over the
// process's life (VmHWM), in bytes.
func (p procStat) rss() (now, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", p.pid, name, err)
		}
		if name == "VmRSS" {
			now = kib << 10
		} else {
			peak = kib << 10
		}
	}
	return now, peak, sc.Err()
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// cpu returns the user plus system CPU time the process has used so far.
func (p procStat) cpu() (time.Duration, error) {
	s, err := readStat(p.pid)
	return s.cpu, err
}

// stat is what /proc/<pid>/stat says about a process's parent and CPU time.
type stat struct {
	comm     string
	ppid     int
	cpu      time.Duration // utime + stime: the process's own, all its threads
	children time.Duration // cutime + cstime: its children that exited and were reaped
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing one, where field 3 (state) starts.
	open, i := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || i < open {
		return stat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const ppid, utime, stime, cutime, cstime = 4 - 3, 14 - 3, 15 - 3, 16 - 3, 17 - 3
	if len(f) <= cstime {
		return stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var n [cstime + 1]int64
	for _, k := range []int{ppid, utime, stime, cutime, cstime} {
		if n[k], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	ticks := func(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	return stat{
		comm:     string(b[open+1 : i]),
		ppid:     int(n[ppid]),
		cpu:      ticks(n[utime] + n[stime]),
		children: ticks(n[cutime] + n[cstime]),
	}, nil
}

// childrenOf returns the live children of the process ppid, by pid, from a
// scan of /proc. A process that exits during the scan is left out.
func childrenOf(ppid int) (map[int]stat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := make(map[int]stat)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil && s.ppid == ppid {
			out[pid] = s
		}
	}
	return out, nil
}

// samplePeakRSS polls the resident set every 100 ms until ctx ends and
// returns the largest value seen: a check on VmHWM, and the curve's peak
// where VmHWM is not kept.
func (p procStat) samplePeakRSS(ctx context.Context) int64 {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var peak int64
	for {
		if now, _, err := p.rss(); err == nil {
			peak = max(peak, now)
		}
		select {
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
	}
}

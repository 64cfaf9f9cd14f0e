package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads the five standard fields, nothing else.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Spec is a parsed cron expression in its time zone.
type Spec struct {
	sched *cron.SpecSchedule
}

// Parse parses a five-field cron expression (minute hour day-of-month month
// day-of-week) in the IANA time zone timezone ("" for UTC).
func Parse(expr, timezone string) (Spec, error) {
	loc := time.UTC
	if timezone != "" {
		l, err := loadLocation(timezone)
		if err != nil {
			return Spec{}, err
		}
		loc = l
	}
	trimmed := strings.TrimSpace(expr)
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return Spec{}, fmt.Errorf("cron %q: name the time zone with --timezone, not in the expression", expr)
	}
	if n := len(strings.Fields(trimmed)); n != 5 {
		return Spec{}, fmt.Errorf("cron %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", expr, n)
	}
	s, err := parser.Parse(trimmed)
	if err != nil {
		return Spec{}, fmt.Errorf("cron %q: %w", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return Spec{}, fmt.Errorf("cron %q: not a field schedule", expr)
	}
	spec.Location = loc
	return Spec{sched: spec}, nil
}

// loadLocation loads an IANA zone; "Local" and names that are not zones
// are refused (the relay's machine must not decide when a schedule fires).
func loadLocation(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, errors.New(`time zone "Local" depends on the machine: name an IANA zone such as Europe/Berlin`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q is not an IANA time zone name such as Europe/Berlin or UTC", name)
	}
	return loc, nil
}

// Next returns the first tick after t, in UTC; zero when there is none
// within five years (a date that never comes, such as 30 February).
//
// Across daylight saving changes, as Vixie cron does for schedules of given
// hours: a time of day that happens twice (the hour repeated when clocks
// fall back) fires at its first occurrence only, and a time of day that
// does not happen (the hour skipped when clocks spring forward) fires once
// at the first instant after the gap (02:30 in New York on the
// spring-forward day fires at 03:00). A schedule whose hour field is *
// fires by absolute time: every hour, an hour apart, on both days.
func (s Spec) Next(t time.Time) time.Time {
	n := s.sched.Next(t)
	for !n.IsZero() && s.repeated(n) {
		n = s.sched.Next(n)
	}
	if g, ok := s.gapTick(t, n); ok {
		return g.UTC()
	}
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// gapTick returns the first spring-forward transition after t and not after
// n (or within a year, n zero) whose skipped times of day the schedule names:
// those ticks fire at the transition.
func (s Spec) gapTick(t, n time.Time) (time.Time, bool) {
	if s.sched.Hour&starBit != 0 {
		return time.Time{}, false
	}
	loc := s.sched.Location
	limit := n
	if limit.IsZero() {
		limit = t.AddDate(1, 0, 0)
	}
	for cur := t; ; {
		_, end := cur.In(loc).ZoneBounds()
		if end.IsZero() || end.After(limit) {
			return time.Time{}, false
		}
		before, after := end.Add(-time.Second).In(loc), end.In(loc)
		_, offBefore := before.Zone()
		_, offAfter := after.Zone()
		if offAfter > offBefore && end.After(t) {
			// The wall clock jumps from gapStart to gapEnd: does the
			// schedule name a minute in between?
			gapStart := wall(end.Add(-time.Second).In(loc)).Truncate(time.Minute).Add(time.Minute)
			gapEnd := wall(after)
			utc := *s.sched
			utc.Location = time.UTC
			if m := utc.Next(gapStart.Add(-time.Second)); !m.IsZero() && m.Before(gapEnd) {
				return end, true
			}
		}
		cur = end
	}
}

// wall is t's wall clock read as a UTC time.
func wall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

// starBit is robfig/cron's mark of a field written as *.
const starBit = 1 << 63

// repeated reports whether tick n is the second occurrence of its time of
// day (an hour earlier the clock showed the same) in a schedule of given
// hours.
func (s Spec) repeated(n time.Time) bool {
	if s.sched.Hour&starBit != 0 {
		return false
	}
	loc := s.sched.Location
	a, b := n.In(loc), n.Add(-time.Hour).In(loc)
	return a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.Day() == b.Day()
}

// lookBack are the windows before now in which Latest looks for ticks,
// widening until one holds a tick: a schedule missed for a year is found
// without a walk over every minute of that year.
var lookBack = []time.Duration{time.Hour, 48 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 366 * 24 * time.Hour}

// Latest returns the latest tick after after and not after now; ok is false
// when there is none. A zero after means "never": any earlier tick counts.
func (s Spec) Latest(after, now time.Time) (tick time.Time, ok bool) {
	if !now.After(after) && !after.IsZero() {
		return time.Time{}, false
	}
	for _, back := range lookBack {
		from := now.Add(-back)
		if !after.IsZero() && !from.After(after) {
			return s.walk(after, now)
		}
		if t, ok := s.walk(from, now); ok {
			return t, true
		}
	}
	if after.IsZero() {
		return time.Time{}, false
	}
	return s.walk(after, now)
}

// walk returns the last tick in (from, now].
func (s Spec) walk(from, now time.Time) (time.Time, bool) {
	t := s.Next(from)
	if t.IsZero() || t.After(now) {
		return time.Time{}, false
	}
	for {
		n := s.Next(t)
		if n.IsZero() || n.After(now) {
			return t, true
		}
		t = n
	}
}

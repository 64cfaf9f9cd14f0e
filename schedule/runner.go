package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventbus/eventbus/internal/backoff"
)

// Runner fires the ticks of the enabled schedules, a background service of
// the relay (relay.Service): only the active relay runs it. It wakes at the
// earliest next tick, at most Poll later (a schedule added or changed
// meanwhile is seen within Poll), so a tick fires within a second of its
// time with the default.
type Runner struct {
	Store *Store
	Poll  time.Duration
	Log   *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// problems remembers the schedules whose cron was reported bad, by
	// name and cron, so that each is logged once, not every poll.
	problems map[string]string
}

// Name names the service in logs.
func (*Runner) Name() string { return "schedules" }

// Run fires ticks until ctx ends, then returns nil.
func (r *Runner) Run(ctx context.Context) error {
	if r.Poll <= 0 {
		return fmt.Errorf("schedules: poll interval must be positive, got %s", r.Poll)
	}
	retry := backoff.New(100*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		sleep, err := r.step(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.Log.Warn("firing schedules failed", "err", err)
			}
			sleep = retry.Next()
		} else {
			retry.Reset()
		}
		if !backoff.Sleep(ctx, sleep) {
			break
		}
	}
	return nil
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// step fires every due tick and returns how long to sleep until the next.
func (r *Runner) step(ctx context.Context) (time.Duration, error) {
	list, err := r.Store.enabled(ctx)
	if err != nil {
		return 0, err
	}
	now := r.now()
	wake := now.Add(r.Poll)
	seen := make(map[string]bool, len(list))
	for i := range list {
		s := &list[i]
		seen[s.Name] = true
		s.plan(now)
		if s.spec == nil {
			if r.problems[s.Name] != s.Cron+"\x00"+s.Timezone {
				r.Log.Error("schedule not run: bad cron or time zone", "schedule", s.Name, "err", s.Problem)
				if r.problems == nil {
					r.problems = make(map[string]string)
				}
				r.problems[s.Name] = s.Cron + "\x00" + s.Timezone
			}
			continue
		}
		delete(r.problems, s.Name)
		if tick, ok := s.spec.Latest(s.after(), now); ok {
			f, err := r.Store.Fire(ctx, s.ID, tick)
			if err != nil {
				return 0, err
			}
			switch {
			case f.Refused != "":
				r.Log.Error("schedule tick not published: publish_event refused its event; the next tick tries again",
					"schedule", s.Name, "tick", tick.Format(time.RFC3339), "err", f.Refused)
			case f.Fired:
				r.Log.Info("schedule fired", "schedule", s.Name, "tick", tick.Format(time.RFC3339), "id", f.EventID)
			}
		}
		if next := s.spec.Next(now); !next.IsZero() && next.Before(wake) {
			wake = next
		}
	}
	for name := range r.problems {
		if !seen[name] {
			delete(r.problems, name)
		}
	}
	return max(wake.Sub(r.now()), time.Millisecond), nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/replay"
)

func replayCommand(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("replay")
	var since, until timeFlag
	var f outbox.Filter
	fs.Var(&since, "since", "events created at or after this time")
	fs.Var(&until, "until", "events created before this time")
	fs.Var((*list)(&f.EventTypes), "event-type", "event type (repeatable)")
	fs.Var((*list)(&f.AggregateTypes), "aggregate-type", "aggregate type (repeatable)")
	fs.Var((*list)(&f.Statuses), "status", "row status (repeatable)")
	fs.Var((*list)(&f.IDs), "id", "event id (repeatable)")
	dryRun := fs.Bool("dry-run", false, "list the events that would be replayed, publish nothing")
	rate := fs.Float64("rate", 0, "at most this many events per second (0: unlimited)")
	if err := parse(fs, args); err != nil {
		return err
	}
	f.Since, f.Until = since.t, until.t
	for _, s := range f.Statuses {
		if !event.ValidStatus(s) {
			return &usageError{fmt.Sprintf("--status %q: want pending, processing, processed or failed", s)}
		}
	}
	for _, id := range f.IDs {
		if !event.ValidID(id) {
			return &usageError{fmt.Sprintf("--id %q is not a UUID", id)}
		}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	opts := replay.Options{DryRun: *dryRun, Rate: *rate}
	var pub *publisher.Publisher
	var bar *progress
	if !*dryRun {
		types, err := loadTypes(ctx, pool)
		if err != nil {
			return err
		}
		if pub, err = connectPublisher(ctx, cfg, 256, types, nil); err != nil {
			return err
		}
		defer pub.Close()
		if err := pub.EnsureStream(ctx); err != nil {
			return err
		}
		total, err := outbox.NewStore(pool).Count(ctx, f)
		if err != nil {
			return err
		}
		bar = newProgress(stderr)
		bar.Start("replayed events", total)
		opts.OnEvent = func(*event.Event) { bar.Add() }
	} else {
		opts.OnEvent = func(e *event.Event) {
			fmt.Fprintf(stdout, "%s  %s  %s  %s\n", e.ID, e.CreatedAt.Format(time.RFC3339), e.EventType, e.AggregateID)
		}
	}
	res, err := replay.Run(ctx, outbox.NewStore(pool), pub, f, opts)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return err
	}
	switch {
	case *dryRun:
		fmt.Fprintf(stdout, "would replay %d events\n", res.Matched)
	case len(res.Rejected) > 0:
		// The summary is the command's error line: exit 1.
		return fmt.Errorf("replayed %d of %d events; %s", res.Published, res.Matched, rejectedSummary(res.Rejected))
	default:
		fmt.Fprintf(stdout, "replayed %d events\n", res.Published)
	}
	return nil
}

// rejectedSummary says which events the broker refused ("id: reason"), the
// first few of them, in one line.
func rejectedSummary(rejected []string) string {
	const named = 3
	s := fmt.Sprintf("%d could not be replayed: %s", len(rejected), strings.Join(rejected[:min(named, len(rejected))], "; "))
	if more := len(rejected) - named; more > 0 {
		s += fmt.Sprintf("; and %d more", more)
	}
	return s
}

package main

// prune discards on purpose: it deletes old history rows (processed or
// failed), never rows that are not delivered yet (pending, processing).

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
)

// ageFlag is a positive duration: Go's syntax ("36h", "90m") or whole days
// ("30d"), which may be followed by a Go duration ("1d12h").
type ageFlag struct{ d time.Duration }

func (f *ageFlag) String() string {
	if f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f *ageFlag) Set(v string) error {
	d, err := config.ParseAge(v)
	if err != nil {
		return err
	}
	f.d = d
	return nil
}

func pruneCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("prune")
	var age ageFlag
	var statuses list
	fs.Var(&age, "older-than", "delete events created longer ago than this, e.g. 30d or 36h (required)")
	fs.Var(&statuses, "status", "status of the rows to delete: processed (default) or failed (repeatable)")
	batch := fs.Int("batch", outbox.DefaultPruneBatch, "rows per DELETE transaction")
	dryRun := fs.Bool("dry-run", false, "count the events that would be deleted, delete nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	if age.d == 0 {
		return &usageError{"--older-than is required, e.g. --older-than 30d"}
	}
	if len(statuses) == 0 {
		statuses = list{event.StatusProcessed}
	}
	for _, s := range statuses {
		switch s {
		case event.StatusProcessed, event.StatusFailed:
		case event.StatusPending, event.StatusProcessing:
			return &usageError{fmt.Sprintf("--status %s refused: %s events are not delivered yet and are never pruned; want processed or failed", s, s)}
		default:
			return &usageError{fmt.Sprintf("--status %q: want processed or failed", s)}
		}
	}
	if *batch < 1 {
		return &usageError{fmt.Sprintf("--batch must be at least 1, got %d", *batch)}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := outbox.NewStore(pool)
	if *dryRun {
		n, err := store.Prunable(ctx, age.d, statuses)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "would prune %d events (%s, older than %s)\n", n, statuses.String(), age.d)
		return nil
	}
	n, err := store.Prune(ctx, age.d, statuses, *batch)
	if err != nil {
		if n > 0 {
			fmt.Fprintf(stdout, "pruned %d events before the error\n", n)
		}
		return err
	}
	fmt.Fprintf(stdout, "pruned %d events (%s, older than %s)\n", n, statuses.String(), age.d)
	return nil
}

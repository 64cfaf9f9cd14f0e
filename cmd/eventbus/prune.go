package main

// The two commands that discard on purpose: prune deletes old history rows,
// slot advance makes the relay skip a stretch of WAL.

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/eventbus/eventbus/cdc"
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

func slotAdvanceCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("slot advance")
	to := fs.String("to", "", "WAL position to move the slot's confirmed position to, e.g. 0/16B3748 (required)")
	force := fs.Bool("force", false, "terminate the relay streaming from the slot first")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return &usageError{"--to is required, e.g. --to 0/16B3748"}
	}
	lsn, err := cdc.ParseLSN(*to)
	if err != nil {
		return &usageError{"--to: " + err.Error()}
	}
	from, now, err := cdc.AdvanceSlot(ctx, cfg.DatabaseURL, cfg.Slot, lsn, *force)
	if err != nil {
		return err
	}
	if lsn <= from {
		fmt.Fprintf(stdout, "slot %s is already at %s, not before %s: nothing to skip\n", cfg.Slot, from, lsn)
		return nil
	}
	if now < lsn {
		fmt.Fprintf(stdout, "slot %s advanced from %s to %s (the server's flush position; %s is not written yet)\n", cfg.Slot, from, now, lsn)
	} else {
		fmt.Fprintf(stdout, "slot %s advanced from %s to %s\n", cfg.Slot, from, now)
	}
	if now > from {
		fmt.Fprintf(stdout, "warning: events committed between %s and %s are skipped: the relay will not deliver them; "+
			"their rows stay pending, and select process_pending_events() hands them back to the relay\n", from, now)
	}
	return nil
}

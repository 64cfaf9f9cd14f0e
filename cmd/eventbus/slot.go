package main

// The slot commands. reset and drop keep every pending row (the next run
// backfills them); advance discards on purpose: the relay skips a stretch of WAL.

import (
	"context"
	"fmt"
	"io"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/relay"
)

func slotCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return &usageError{"usage: eventbus slot reset [--force] | eventbus slot drop [--force] | eventbus slot advance --to LSN [--force]"}
	}
	if args[0] == "advance" {
		return slotAdvanceCommand(ctx, cfg, args[1:], stdout)
	}
	fs := flags("slot " + args[0])
	force := fs.Bool("force", false, "terminate the relay streaming from the slot first")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := outbox.NewStore(pool)
	switch args[0] {
	case "reset":
		lsn, err := relay.ResetSlot(ctx, store, cfg.DatabaseURL, cfg.Slot, *force, cfg.SlotFailover)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "slot %s recreated at %s; rows still pending are published by the next eventbus run\n", cfg.Slot, lsn)
	case "drop":
		if err := relay.DropSlot(ctx, store, cfg.DatabaseURL, cfg.Slot, *force); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "slot %s dropped; the next eventbus run creates it and publishes the rows still pending\n", cfg.Slot)
	default:
		return &usageError{fmt.Sprintf("unknown slot command %q: use reset, drop or advance", args[0])}
	}
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

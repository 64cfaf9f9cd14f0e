package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/outbox"
)

// statusReport is the output of `eventbus status --json`.
type statusReport struct {
	cdc.SlotInfo
	Counts   outbox.Stats     `json:"counts"`
	Window   string           `json:"window"`
	Failures []outbox.Failure `json:"failures"`
}

func status(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("status")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	slot, err := cdc.InspectSlot(ctx, pool, cfg.Slot)
	if err != nil {
		return err
	}
	store := outbox.NewStore(pool)
	const window = 24 * time.Hour
	stats, err := store.Stats(ctx, window)
	if err != nil {
		return err
	}
	failures, err := store.RecentFailures(ctx, 10)
	if err != nil {
		return err
	}
	report := statusReport{SlotInfo: slot, Counts: stats, Window: "24h", Failures: failures}
	if report.Failures == nil {
		report.Failures = []outbox.Failure{}
	}
	if *asJSON {
		return printJSON(stdout, report)
	}
	printStatus(stdout, report)
	return nil
}

func printStatus(w io.Writer, r statusReport) {
	if !r.Exists {
		fmt.Fprintf(w, "slot           %s (missing: created by the next eventbus run)\n", r.Name)
	} else {
		state := "inactive"
		if r.Active {
			state = "active"
			if r.ActivePID != nil {
				state = fmt.Sprintf("active, pid %d", *r.ActivePID)
			}
		}
		fmt.Fprintf(w, "slot           %s (%s)\n", r.Name, state)
		fmt.Fprintf(w, "confirmed      %s\n", r.ConfirmedFlushLSN)
		fmt.Fprintf(w, "restart        %s\n", r.RestartLSN)
		fmt.Fprintf(w, "wal_status     %s\n", r.WALStatus)
		if r.LagBytes != nil {
			lag := fmt.Sprintf("%d bytes", *r.LagBytes)
			if r.LagSeconds != nil {
				lag += fmt.Sprintf(", %s", time.Duration(*r.LagSeconds*float64(time.Second)).Round(time.Millisecond))
			}
			fmt.Fprintf(w, "lag            %s\n", lag)
		}
	}
	c := r.Counts
	fmt.Fprintf(w, "events (%s)  pending %d  processing %d  processed %d  failed %d  total %d\n",
		r.Window, c.Pending, c.Processing, c.Processed, c.Failed, c.Total)
	if c.OldestPending != nil {
		fmt.Fprintf(w, "oldest pending %s (%s ago)\n", c.OldestPending.UTC().Format(time.RFC3339), time.Since(*c.OldestPending).Round(time.Second))
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w, "latest failed events:")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  %s  %s  retries=%d  %s\n", f.ID, f.EventType, f.RetryCount, f.ErrorMessage)
		}
	}
}

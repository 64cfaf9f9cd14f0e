package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/verify"
)

// listed is how many missing events verify prints; it counts them all.
const listed = 100

// verifyCommand reconciles the table with the stream (package verify): it
// prints the processed events of the window missing from the stream and
// with --repair republishes them. Exit 1 when events are missing and not
// repaired (or the stream refused some).
func verifyCommand(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("verify")
	var since, until timeFlag
	fs.Var(&since, "since", "verify events created at or after this time (default: 24h before --until)")
	fs.Var(&until, "until", "verify events created before this time (default: now)")
	repair := fs.Bool("repair", false, "republish the missing events")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !since.t.IsZero() && !until.t.IsZero() && !until.t.After(since.t) {
		return &usageError{fmt.Sprintf("--until %s is not after --since %s", until.String(), since.String())}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	nc, stream, err := openStream(ctx, cfg, "eventbus verify")
	if err != nil {
		return err
	}
	defer nc.Close()
	var pub *publisher.Publisher
	if *repair {
		pub, err = connectPublisher(ctx, cfg, 256, nil, nil)
		if err != nil {
			return err
		}
		defer pub.Close()
	}

	r, err := verify.Run(ctx, outbox.NewStore(pool), stream, pub, verify.Options{
		Since: since.t, Until: until.t, Repair: *repair, List: listed, Progress: newProgress(stderr),
	})
	if err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	for _, rej := range r.Rejected {
		fmt.Fprintf(stderr, "not republished: %s\n", rej)
	}
	if *asJSON {
		if err := printJSON(stdout, r); err != nil {
			return err
		}
	} else {
		printVerify(stdout, r, *repair)
	}
	switch {
	case len(r.Rejected) > 0:
		return fmt.Errorf("%d of %d missing events could not be republished", len(r.Rejected), r.MissingCount)
	case r.MissingCount > 0 && !*repair:
		return fmt.Errorf("%d events missing from stream %s; eventbus verify --repair republishes them", r.MissingCount, r.Stream)
	}
	return nil
}

// printVerify prints the report for a human: one line per missing event
// (the form of replay --dry-run), then the summary.
func printVerify(w io.Writer, r verify.Report, repair bool) {
	for _, m := range r.Missing {
		fmt.Fprintf(w, "%s  %s  %s  %s\n", m.ID, m.CreatedAt.UTC().Format(time.RFC3339Nano), m.EventType, m.AggregateID)
	}
	if more := r.MissingCount - len(r.Missing); more > 0 {
		fmt.Fprintf(w, "… and %d more\n", more)
	}
	fmt.Fprintf(w, "verified %d processed events created in [%s, %s): %d missing from stream %s\n",
		r.Verified, r.Since.UTC().Format(time.RFC3339), r.Until.UTC().Format(time.RFC3339), r.MissingCount, r.Stream)
	if !repair || r.MissingCount == 0 {
		return
	}
	fmt.Fprintf(w, "republished %d events to stream %s", r.Republished, r.Stream)
	if r.AsReplays > 0 {
		fmt.Fprintf(w, " (%d as replays: the stream's duplicate window still held their ids)", r.AsReplays)
	}
	if r.Present > 0 {
		fmt.Fprintf(w, "; %d reached it meanwhile", r.Present)
	}
	fmt.Fprintln(w)
}

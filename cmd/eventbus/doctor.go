package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/doctor"
	"github.com/eventbus/eventbus/natsconn"
)

// errChecksFailed makes doctor exit 1 once the results are printed.
type errChecksFailed struct{ n int }

func (e errChecksFailed) Error() string {
	return fmt.Sprintf("%d check(s) failed; see the fixes above", e.n)
}

func doctorCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("doctor")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	opts := doctor.Options{
		Slot: cfg.Slot, SlotFailover: cfg.SlotFailover, Publication: cfg.Publication, RelayRole: cfg.RelayRole,
		Prune:   cfg.Retention > 0,
		NATSURL: natsconn.RedactURL(cfg.NATSURL), Stream: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix,
		HTTPAddr: cfg.HTTPAddr,
	}
	dbCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	opts.DB, opts.DBError = openPool(dbCtx, cfg)
	cancel()
	if opts.DB != nil {
		defer opts.DB.Close()
	}
	natsOpts, err := natsconn.Options(cfg)
	if err != nil {
		return err
	}
	// One attempt, no reconnects: doctor reports, it does not wait.
	nc, err := nats.Connect(cfg.NATSURL, append(natsOpts, nats.Name("eventbus doctor"), nats.Timeout(5*time.Second), nats.MaxReconnects(0))...)
	if err == nil {
		defer nc.Close()
		opts.JS, err = jetstream.New(nc)
	}
	opts.NATSError = err

	results := doctor.Run(ctx, opts)
	if *asJSON {
		if err := doctor.PrintJSON(stdout, results); err != nil {
			return err
		}
	} else {
		doctor.Print(stdout, results)
	}
	failed := 0
	for _, r := range results {
		if r.Status == doctor.Fail {
			failed++
		}
	}
	if failed > 0 {
		return errChecksFailed{failed}
	}
	return nil
}

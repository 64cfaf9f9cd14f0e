package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/eventbus/eventbus/catalog"
	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
)

func publishCommand(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("publish")
	eventType := fs.String("event-type", "", "event type, e.g. payment.completed (required)")
	aggregateType := fs.String("aggregate-type", "", "aggregate type, e.g. payment (required)")
	aggregateID := fs.String("aggregate-id", "", "aggregate id (required)")
	payload := fs.String("payload", "{}", "payload JSON")
	metadata := fs.String("metadata", "{}", "metadata JSON")
	org := fs.String("organization-id", "", "organization UUID")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{
		{"--event-type", *eventType}, {"--aggregate-type", *aggregateType}, {"--aggregate-id", *aggregateID},
	} {
		if f.value == "" {
			return &usageError{f.name + " is required"}
		}
	}
	for _, f := range []struct{ name, value string }{{"--payload", *payload}, {"--metadata", *metadata}} {
		if !json.Valid([]byte(f.value)) {
			return &usageError{fmt.Sprintf("%s is not valid JSON: %s", f.name, f.value)}
		}
	}
	if *org != "" && !event.ValidID(*org) {
		return &usageError{fmt.Sprintf("--organization-id %q is not a UUID", *org)}
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	// Checked before inserting, as the relay will check it: a payload its
	// type's schema refuses is never stored.
	versions, err := catalog.ListType(ctx, pool, *eventType)
	if err != nil {
		return err
	}
	types := catalog.New()
	for _, err := range types.SetType(*eventType, versions) {
		fmt.Fprintln(stderr, "eventbus publish: warning:", err)
	}
	if _, err := types.CheckPayload(*eventType, []byte(*payload), []byte(*metadata)); err != nil {
		return err
	}
	id, err := outbox.NewStore(pool).Publish(ctx, *eventType, *aggregateType, *aggregateID, []byte(*payload), []byte(*metadata), *org)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

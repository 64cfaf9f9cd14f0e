package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/schedule"
)

// scheduleCommand manages recurring events (public.event_schedules); the
// running relay fires them.
func scheduleCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	return runSubcommand(ctx, cfg, "schedule", args, stdout,
		subcommand{"add", scheduleAdd}, subcommand{"list", scheduleList}, subcommand{"remove", scheduleRemove})
}

func scheduleAdd(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("schedule add")
	name := fs.String("name", "", "the schedule's unique name (required)")
	cron := fs.String("cron", "", `five cron fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * mon-fri" (required)`)
	timezone := fs.String("timezone", "", "IANA time zone of the cron fields, e.g. Europe/Berlin (default UTC)")
	eventType := fs.String("event-type", "", "event type, e.g. report.due (required)")
	aggregateType := fs.String("aggregate-type", "", "aggregate type (required)")
	aggregateID := fs.String("aggregate-id", "", "aggregate id (required)")
	payload := fs.String("payload", "{}", "payload JSON object")
	metadata := fs.String("metadata", "{}", "metadata JSON object (schedule and scheduled_for are added to it)")
	org := fs.String("organization-id", "", "organization UUID")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{
		{"--name", *name}, {"--cron", *cron}, {"--event-type", *eventType},
		{"--aggregate-type", *aggregateType}, {"--aggregate-id", *aggregateID},
	} {
		if strings.TrimSpace(f.value) == "" {
			return &usageError{f.name + " is required"}
		}
	}
	if _, err := schedule.Parse(*cron, *timezone); err != nil {
		return &usageError{err.Error()}
	}
	if err := config.ValidSubject(*eventType); err != nil {
		return &usageError{fmt.Sprintf("--event-type %q %v", *eventType, err)}
	}
	for _, f := range []struct{ name, value string }{{"--payload", *payload}, {"--metadata", *metadata}} {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(f.value), &obj); err != nil || obj == nil {
			return &usageError{fmt.Sprintf("%s is not a JSON object: %s", f.name, f.value)}
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
	id, err := schedule.NewStore(pool).Add(ctx, schedule.Schedule{
		Name: *name, Cron: *cron, Timezone: *timezone, EventType: *eventType, AggregateType: *aggregateType,
		AggregateID: *aggregateID, Payload: []byte(*payload), Metadata: []byte(*metadata), OrganizationID: *org, Enabled: true,
	})
	if errors.Is(err, schedule.ErrExists) {
		return &usageError{fmt.Sprintf("a schedule named %q exists already (eventbus schedule remove %s first)", *name, *name)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

func scheduleList(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("schedule list")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	list, err := schedule.NewStore(pool).List(ctx, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSONList(stdout, list)
	}
	tw := newTable(stdout, "NAME\tCRON\tTIMEZONE\tEVENT TYPE\tENABLED\tLAST RUN\tNEXT RUN")
	for _, s := range list {
		tz, last, next := s.Timezone, "-", "-"
		if tz == "" {
			tz = "UTC"
		}
		if s.LastRunAt != nil {
			last = s.LastRunAt.UTC().Format(time.RFC3339)
		}
		switch {
		case s.NextRunAt != nil:
			next = s.NextRunAt.UTC().Format(time.RFC3339)
		case s.Problem != "":
			next = "(" + s.Problem + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\n", s.Name, s.Cron, tz, s.EventType, s.Enabled, last, next)
	}
	return tw.Flush()
}

func scheduleRemove(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("schedule remove")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(args[1:], args[0]) // the name first, flags after it
	}
	if err := fs.Parse(args); err != nil {
		return parse(fs, args) // the same error, as a usage error
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return &usageError{"schedule remove: want one schedule name"}
	}
	name := fs.Arg(0)
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	ok, err := schedule.NewStore(pool).Remove(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no schedule named %q", name)
	}
	fmt.Fprintln(stdout, "removed", name)
	return nil
}

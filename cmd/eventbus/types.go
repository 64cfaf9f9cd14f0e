package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/eventbus/eventbus/catalog"
	"github.com/eventbus/eventbus/config"
)

func typesCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	return runSubcommand(ctx, cfg, "types", args, stdout, subcommand{"set", typesSet}, subcommand{"list", typesList})
}

// typesSet adds the next version of a type and prints its number.
func typesSet(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("types set")
	schemaFile := fs.String("schema", "", "a file holding the payload's JSON Schema (2020-12); none: payloads are not validated")
	description := fs.String("description", "", "what the event means")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(args[1:], args[0]) // the type first, flags after it
	}
	if err := fs.Parse(args); err != nil {
		return parse(fs, args) // the same error, as a usage error
	}
	if fs.NArg() != 1 {
		return &usageError{"types set: want one event type, e.g. eventbus types set lead.created --schema lead.created.json"}
	}
	eventType := fs.Arg(0)
	if err := config.ValidSubject(eventType); err != nil {
		return &usageError{fmt.Sprintf("types set: event type %q is not a valid NATS subject: it %v", eventType, err)}
	}
	var schema []byte
	if *schemaFile != "" {
		b, err := os.ReadFile(*schemaFile)
		if err != nil {
			return &usageError{fmt.Sprintf("--schema: %v", err)}
		}
		if _, err := catalog.Compile(eventType, 0, b); err != nil {
			return &usageError{fmt.Sprintf("--schema %s: %v", *schemaFile, err)}
		}
		schema = b
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	v, err := catalog.Add(ctx, pool, eventType, schema, *description)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, v.Version)
	return nil
}

func typesList(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("types list")
	asJSON := fs.Bool("json", false, "print JSON (with the schemas)")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	versions, err := catalog.List(ctx, pool)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSONList(stdout, versions)
	}
	current := map[string]int{}
	for _, v := range versions {
		current[v.EventType] = v.Version // ordered by version: the last is current
	}
	tw := newTable(stdout, "EVENT TYPE\tVERSION\tCURRENT\tSCHEMA\tCREATED\tDESCRIPTION")
	for _, v := range versions {
		schema := "none"
		if v.Schema != nil {
			schema = fmt.Sprintf("%d bytes", len(v.Schema))
		}
		fmt.Fprintf(tw, "%s\t%d\t%t\t%s\t%s\t%s\n", v.EventType, v.Version, current[v.EventType] == v.Version,
			schema, v.CreatedAt.UTC().Format("2006-01-02 15:04:05"), v.Description)
	}
	return tw.Flush()
}

// loadTypes reads the event type catalog, for a command that publishes
// (replay: its messages carry Eventbus-Event-Version like the relay's).
func loadTypes(ctx context.Context, pool catalog.Querier) (*catalog.Catalog, error) {
	versions, err := catalog.List(ctx, pool)
	if err != nil {
		return nil, err
	}
	types := catalog.New()
	types.Set(versions) // a stored schema that does not compile: only replay's header needs the catalog
	return types, nil
}

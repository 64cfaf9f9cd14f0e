package main

import (
	"context"
	"io"

	"github.com/eventbus/eventbus/catalog"
	"github.com/eventbus/eventbus/config"
)

// asyncapiCommand prints the AsyncAPI 3.0 document of the event type
// catalog, YAML unless --json.
func asyncapiCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("asyncapi")
	asJSON := fs.Bool("json", false, "print JSON instead of YAML")
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
	doc, err := catalog.AsyncAPI(versions, catalog.DocOptions{SubjectPrefix: cfg.SubjectPrefix, NATSURL: cfg.NATSURL, Version: version()})
	if err != nil {
		return err
	}
	if *asJSON {
		doc = append(doc, '\n')
	} else if doc, err = catalog.YAML(doc); err != nil {
		return err
	}
	_, err = stdout.Write(doc)
	return err
}

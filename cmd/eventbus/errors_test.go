package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
)

func TestDescribeShowsTheServersMessageOnce(t *testing.T) {
	const url = "postgres://relay:pw@db.internal:6543/crm?sslmode=disable"
	invalid := &pgconn.PgError{Severity: "ERROR", Code: "22023",
		Message: `publish_event: p_event_type "bad type" is not a valid event type: it contains a space, which is not allowed`}
	for _, c := range []struct {
		name, command string
		err           error
		want          string
	}{
		{"doubled prefix", "publish", fmt.Errorf("publish_event: %w", invalid),
			`publish_event: p_event_type "bad type" is not a valid event type: it contains a space, which is not allowed (SQLSTATE 22023)`},
		{"other context kept", "publish", fmt.Errorf("cli: publish_event: %w", invalid),
			`cli: publish_event: p_event_type "bad type" is not a valid event type: it contains a space, which is not allowed (SQLSTATE 22023)`},
		{"no context", "prune", &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: "permission denied for table event_bus"},
			"permission denied for table event_bus (SQLSTATE 42501)"},
		{"context and a tail", "prune", fmt.Errorf("prune events: %w (batch 3)", &pgconn.PgError{Severity: "ERROR", Code: "57014", Message: "canceling statement due to statement timeout"}),
			"prune events: canceling statement due to statement timeout (SQLSTATE 57014) (batch 3)"},
		{"no schema", "status", fmt.Errorf("count events: %w", &pgconn.PgError{Severity: "ERROR", Code: "42P01", Message: `relation "public.event_bus" does not exist`}),
			`relation "public.event_bus" does not exist in database "crm" on db.internal:6543: run eventbus migrate first`},
		{"no function", "publish", fmt.Errorf("publish_event: %w", &pgconn.PgError{Severity: "ERROR", Code: "42883", Message: "function public.publish_event(unknown) does not exist"}),
			`function public.publish_event(unknown) does not exist in database "crm" on db.internal:6543: run eventbus migrate first`},
		{"migrate itself", "migrate", fmt.Errorf("apply 0003: %w", &pgconn.PgError{Severity: "ERROR", Code: "42P01", Message: `relation "x" does not exist`}),
			`apply 0003: relation "x" does not exist (SQLSTATE 42P01)`},
		{"not a database error", "replay", errors.New("look up stream EVENTBUS: boom"), "look up stream EVENTBUS: boom"},
	} {
		assert.Equal(t, c.want, describe(c.command, c.err, url), c.name)
	}
}

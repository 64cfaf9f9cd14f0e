package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// describe is how main words err, a command's failure, in its one line.
//
// A database error shows the server's message once, with its SQLSTATE:
// `publish_event: p_event_type "x y" is not a valid event type: … (SQLSTATE
// 22023)`, not `publish_event: ERROR: publish_event: …`. A table or function
// that does not exist means a database nobody migrated: the line names the
// database and says to run `eventbus migrate` (except for migrate itself).
func describe(command string, err error, databaseURL string) string {
	full := err.Error()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return full
	}
	switch pgErr.Code {
	case "42P01", "42883": // undefined_table, undefined_function
		if command != "migrate" {
			return fmt.Sprintf("%s in %s: run eventbus migrate first", pgErr.Message, databaseName(databaseURL))
		}
	}
	i := strings.LastIndex(full, pgErr.Error())
	if i < 0 {
		return full
	}
	rest := full[i+len(pgErr.Error()):]
	// The context our code added, "a: b: "; its last part is dropped when
	// the server's message starts with it already.
	prefix := strings.TrimSuffix(full[:i], ": ")
	last := prefix
	if j := strings.LastIndex(prefix, ": "); j >= 0 {
		last = prefix[j+len(": "):]
	}
	if last != "" && strings.HasPrefix(pgErr.Message, last+": ") {
		prefix = strings.TrimSuffix(strings.TrimSuffix(prefix, last), ": ")
	}
	if prefix != "" {
		prefix += ": "
	}
	return fmt.Sprintf("%s%s (SQLSTATE %s)%s", prefix, pgErr.Message, pgErr.Code, rest)
}

// databaseName names the database of url for a message: `database "crm" on
// db:5432`.
func databaseName(url string) string {
	c, err := pgconn.ParseConfig(url)
	if err != nil {
		return "the database of EVENTBUS_DATABASE_URL"
	}
	return fmt.Sprintf("database %q on %s", c.Database, net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))))
}

package cdc

import (
	"context"
	"fmt"
)

// MinServerVersion is the oldest PostgreSQL the relay supports, as
// server_version_num: 14, the oldest the test matrix runs on.
const MinServerVersion = 140000

// Feature is a behaviour of the relay that depends on the PostgreSQL
// version: Since is the first major version that has it.
type Feature struct {
	Name      string
	Since     int
	Available bool
	// Effect says what the feature gives, or what happens without it.
	Effect string
}

// ServerVersion reads server_version_num (170002 for 17.2).
func ServerVersion(ctx context.Context, db Querier) (int, error) {
	var v int
	if err := db.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read server_version_num: %w", err)
	}
	return v, nil
}

// Features lists the version-dependent behaviours for a server of version
// (server_version_num). The relay needs none of them: each has a fallback,
// named in its Effect when unavailable.
func Features(version int) []Feature {
	major := version / 10000
	f := func(name string, since int, with, without string) Feature {
		if major >= since {
			return Feature{Name: name, Since: since, Available: true, Effect: with}
		}
		return Feature{Name: name, Since: since, Effect: without}
	}
	return []Feature{
		f("empty transactions skipped", 15,
			"pgoutput sends only transactions that insert into event_bus",
			"pgoutput sends BEGIN/COMMIT for every transaction in the database; the relay folds them (more decoding work on a busy database)"),
		f("public schema closed", 15,
			"PUBLIC may not create in schema public",
			"every role may create in schema public; the definer functions pin search_path to pg_catalog, pg_temp (migration 0010), so planted overloads are not called"),
		f("failover slots", 17,
			"EVENTBUS_SLOT_FAILOVER=true: physical standbys keep a synchronized copy of the slot",
			"EVENTBUS_SLOT_FAILOVER is refused; after a failover the relay creates a new slot and republishes every pending row"),
	}
}

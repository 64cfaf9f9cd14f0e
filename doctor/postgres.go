package doctor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/schema"
)

// Options says what to check: the relay's configuration and connections
// made by the caller.
type Options struct {
	// DB is the database; nil with DBError set when it could not be reached.
	DB      *pgxpool.Pool
	DBError error
	Slot    string
	// SlotFailover is EVENTBUS_SLOT_FAILOVER: the failover check runs.
	SlotFailover bool
	Publication  string
	// RelayRole is EVENTBUS_RELAY_ROLE: its attributes and the grants of
	// `eventbus migrate` are checked; empty skips that check.
	RelayRole string
	// Prune is EVENTBUS_RETENTION set: the relay deletes old events, and
	// RelayRole needs DELETE too.
	Prune bool
	// JS is the NATS connection's JetStream; nil with NATSError set when the
	// server could not be reached. NATSURL names it (redacted).
	JS            jetstream.JetStream
	NATSError     error
	NATSURL       string
	Stream        string
	SubjectPrefix string
	// HTTPAddr is where a running relay answers /readyz; empty skips it.
	HTTPAddr string
}

func (o Options) checks() []check {
	list := []check{o.checkDatabase}
	if o.DB != nil {
		list = append(list, o.checkServer, o.checkConnectionRole, o.checkSchema, o.checkPublication, o.checkSlot,
			o.checkLeadTriggers, o.checkRLS, o.checkDefiners, o.checkProfiles)
		if o.SlotFailover {
			list = append(list, o.checkFailover)
		}
		if o.RelayRole != "" {
			list = append(list, o.checkRelayRole)
		}
		list = append(list, o.checkHBA)
	}
	list = append(list, o.checkNATS)
	if o.JS != nil {
		list = append(list, o.checkStream)
	}
	if o.HTTPAddr != "" {
		list = append(list, o.checkRelay)
	}
	return list
}

func one(r Result) []Result { return []Result{r} }

func (o Options) checkDatabase(ctx context.Context) []Result {
	if o.DB == nil {
		return one(fail("database", "check EVENTBUS_DATABASE_URL and that the server runs", "cannot connect: %v", o.DBError))
	}
	var version, db string
	var num int
	if err := o.DB.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int, current_database()`).
		Scan(&version, &num, &db); err != nil {
		return one(fail("database", "check EVENTBUS_DATABASE_URL and that the server runs", "cannot query: %v", err))
	}
	if num < cdc.MinServerVersion {
		return one(fail("database", "upgrade PostgreSQL: the relay is tested on 14 to 18",
			"PostgreSQL %s, database %s: older than 14", version, db))
	}
	out := []Result{ok("database", "PostgreSQL %s, database %s", version, db)}
	var have, lack []string
	for _, f := range cdc.Features(num) {
		if f.Available {
			have = append(have, fmt.Sprintf("%s (%d+)", f.Name, f.Since))
		} else {
			lack = append(lack, fmt.Sprintf("no %s (%d+): %s", f.Name, f.Since, f.Effect))
		}
	}
	detail := "PostgreSQL " + version
	if len(have) > 0 {
		detail += ": " + strings.Join(have, ", ")
	}
	if len(lack) > 0 {
		detail += "; " + strings.Join(lack, "; ")
	}
	out = append(out, ok("postgres features", "%s", detail))
	return out
}

func (o Options) checkServer(ctx context.Context) []Result {
	l, err := cdc.InspectServer(ctx, o.DB)
	if err != nil {
		return one(fail("replication settings", "", "%v", err))
	}
	var out []Result
	if l.WALLevel != "logical" {
		out = append(out, fail("wal_level", "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
			"wal_level is %s; logical replication needs logical", l.WALLevel))
	} else {
		out = append(out, ok("wal_level", "logical"))
	}
	out = append(out, limit("replication slots", l.ReplicationSlots, l.MaxReplicationSlots, "max_replication_slots"),
		limit("wal senders", l.WALSenders, l.MaxWALSenders, "max_wal_senders"))
	return out
}

// limit judges how much of a server limit is in use: full fails (a new slot
// or sender is refused), four fifths warns.
func limit(check string, used, most int, setting string) Result {
	fix := fmt.Sprintf("ALTER SYSTEM SET %s = %d; then restart PostgreSQL", setting, max(2*most, 10))
	switch {
	case used >= most:
		return fail(check, fix, "%d of %d in use: none left for a new relay", used, most)
	case used*5 >= most*4:
		return warn(check, fix, "%d of %d in use", used, most)
	}
	return ok(check, "%d of %d in use", used, most)
}

func (o Options) checkSchema(ctx context.Context) []Result {
	if _, err := schema.InspectRLS(ctx, o.DB); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return one(fail("schema", "eventbus migrate", "public.event_bus does not exist in this database"))
		}
		return one(fail("schema", "", "%v", err))
	}
	return one(ok("schema", "public.event_bus exists"))
}

func (o Options) checkPublication(ctx context.Context) []Result {
	const name = "publication"
	p, err := schema.InspectPublication(ctx, o.DB, o.Publication)
	switch {
	case err != nil:
		return one(fail(name, "", "%v", err))
	case !p.Exists:
		return one(warn(name, "eventbus migrate (or the next eventbus run) creates it",
			"%s does not exist", o.Publication))
	case !p.HasEventBus:
		return one(fail(name, fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE public.event_bus", o.Publication),
			"%s does not include public.event_bus", o.Publication))
	case !p.Inserts:
		return one(fail(name, fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert')", o.Publication),
			"%s does not publish inserts", o.Publication))
	case p.Filtered:
		return one(fail(name, fmt.Sprintf("ALTER PUBLICATION %s SET TABLE public.event_bus", o.Publication),
			"%s filters the rows or columns of public.event_bus: events or fields are hidden from the relay", o.Publication))
	case len(p.Others) > 0:
		return one(warn(name, fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert')", o.Publication),
			"%s also publishes %s: the relay decodes and skips them, at a cost", o.Publication, strings.Join(p.Others, ", ")))
	}
	return one(ok(name, "%s publishes inserts of public.event_bus only", o.Publication))
}

func (o Options) checkSlot(ctx context.Context) []Result {
	const name = "slot"
	s, err := cdc.InspectSlot(ctx, o.DB, o.Slot)
	switch {
	case err != nil:
		return one(fail(name, "", "%v", err))
	case !s.Exists:
		return one(warn(name, "start the relay: eventbus run creates it and publishes the rows still pending",
			"%s does not exist", o.Slot))
	case s.Plugin != "pgoutput":
		return one(fail(name, "choose another EVENTBUS_SLOT, or drop this one (eventbus slot drop)",
			"%s uses plugin %q, not pgoutput", o.Slot, s.Plugin))
	case s.WALStatus == "lost":
		return one(fail(name, "eventbus slot reset (rows still pending are published by the next run)",
			"%s lost WAL it needed (wal_status lost)", o.Slot))
	}
	state := "inactive"
	if s.Active {
		state = "active"
	}
	detail := fmt.Sprintf("%s (%s, wal_status %s", o.Slot, state, s.WALStatus)
	if s.LagBytes != nil {
		detail += fmt.Sprintf(", lag %d bytes", *s.LagBytes)
	}
	detail += ")"
	if s.Failover != nil {
		detail = strings.TrimSuffix(detail, ")") + fmt.Sprintf(", failover %t)", *s.Failover)
	}
	if s.WALStatus == "unreserved" {
		return one(warn(name, "start the relay or raise max_slot_wal_keep_size: the slot is about to lose WAL", "%s", detail))
	}
	return one(ok(name, "%s", detail))
}

func (o Options) checkFailover(ctx context.Context) []Result {
	const name = "failover"
	if v, err := cdc.ServerVersion(ctx, o.DB); err == nil && v < 170000 {
		return one(fail(name, "upgrade to PostgreSQL 17, or unset EVENTBUS_SLOT_FAILOVER",
			"EVENTBUS_SLOT_FAILOVER=true needs PostgreSQL 17 or newer (this server: %d): the relay refuses to start", v))
	}
	slot, err := cdc.InspectSlot(ctx, o.DB, o.Slot)
	var standbys string
	if err == nil {
		standbys, err = cdc.SynchronizedStandbySlots(ctx, o.DB)
	}
	switch {
	case err != nil:
		return one(fail(name, "EVENTBUS_SLOT_FAILOVER needs PostgreSQL 17 or newer", "%v", err))
	case !slot.Exists:
		return one(warn(name, "start the relay: eventbus run creates it as a failover slot", "%s does not exist", o.Slot))
	case slot.Failover == nil || !*slot.Failover:
		return one(warn(name, "eventbus slot reset with EVENTBUS_SLOT_FAILOVER=true (rows still pending are published by the next run)",
			"%s is not a failover slot: standbys do not synchronize it, and a promoted one lacks it", o.Slot))
	case standbys == "":
		return one(warn(name, "on the primary, list the standbys' physical slots: synchronized_standby_slots = '<slot>[, …]'",
			"synchronized_standby_slots is empty: the relay may publish events a standby has not received, which its promotion loses"))
	}
	return one(ok(name, "%s is a failover slot; the relay waits for synchronized_standby_slots = %s", o.Slot, standbys))
}

func (o Options) checkLeadTriggers(ctx context.Context) []Result {
	const name = "lead triggers"
	missing, err := schema.MissingLeadTriggers(ctx, o.DB)
	switch {
	case err != nil:
		return one(fail(name, "", "%v", err))
	case len(missing) > 0:
		return one(fail(name, "eventbus migrate installs them (or ALTER TABLE public.leads ENABLE TRIGGER …)",
			"missing or disabled on public.leads: %s; lead events are not created", strings.Join(missing, ", ")))
	}
	return one(ok(name, "%s installed", strings.Join(schema.LeadTriggers, ", ")))
}

func (o Options) checkRLS(ctx context.Context) []Result {
	const name = "row-level security"
	r, err := schema.InspectRLS(ctx, o.DB)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01":
		return nil // no schema: the schema check said so
	case err != nil:
		return one(fail(name, "", "%v", err))
	case !r.Enabled:
		return one(fail(name, "ALTER TABLE public.event_bus ENABLE ROW LEVEL SECURITY (eventbus migrate does)",
			"off on public.event_bus: every role with table access sees every organization"))
	case len(r.SeedPolicies) > 0:
		return one(fail(name, "eventbus migrate drops them",
			"the seed's permissive policies are still there: %s", strings.Join(r.SeedPolicies, ", ")))
	}
	return one(ok(name, "on for public.event_bus; the seed's permissive policies are gone"))
}

func (o Options) checkDefiners(ctx context.Context) []Result {
	const name = "definer functions"
	names, err := schema.UnpinnedDefinerFunctions(ctx, o.DB)
	switch {
	case err != nil:
		return one(fail(name, "", "%v", err))
	case len(names) > 0:
		return one(fail(name, "ALTER FUNCTION … SET search_path = pg_catalog, pg_temp, and qualify every name in its body (see SECURITY.md)",
			"SECURITY DEFINER functions without a pinned search_path: %s", strings.Join(names, ", ")))
	}
	return one(ok(name, "every SECURITY DEFINER function of public pins its search_path"))
}

func (o Options) checkProfiles(ctx context.Context) []Result {
	const name = "profiles"
	roles, err := schema.ProfileWriters(ctx, o.DB)
	switch {
	case err != nil:
		return one(fail(name, "", "%v", err))
	case len(roles) > 0:
		return one(fail(name, schema.ProfileWritersFix(roles),
			"%s can rewrite organization_id or role in public.profiles: a member could move into another organization or make themselves admin",
			strings.Join(roles, ", ")))
	}
	return one(ok(name, "only trusted roles can write organization_id and role of public.profiles"))
}

package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventbus/eventbus/schema"
)

// leastPrivilegeFix is the advice for a relay that connects as a superuser.
const leastPrivilegeFix = "run the relay as a least-privilege role: create it, eventbus migrate with EVENTBUS_RELAY_ROLE naming it, " +
	"then EVENTBUS_DATABASE_URL connecting as it (README, Running the relay as a least-privilege role)"

// checkConnectionRole says which role the relay connects as: doctor
// connects with the relay's EVENTBUS_DATABASE_URL.
func (o Options) checkConnectionRole(ctx context.Context) []Result {
	const name = "database role"
	r, err := schema.InspectCurrentRole(ctx, o.DB)
	if err != nil {
		return one(fail(name, "", "%v", err))
	}
	also := ""
	if o.RelayRole != "" && o.RelayRole != r.Name {
		also = fmt.Sprintf(" (EVENTBUS_RELAY_ROLE is %s, which EVENTBUS_DATABASE_URL does not connect as)", o.RelayRole)
	}
	switch {
	case r.Superuser:
		return one(warn(name, leastPrivilegeFix,
			"the relay connects as %s, a superuser: whatever it runs, and whoever has its password, may do anything in the cluster%s", r.Name, also))
	case !r.Replication:
		return one(fail(name, fmt.Sprintf("ALTER ROLE %s REPLICATION, or connect as the relay role (README, Running the relay as a least-privilege role)", pgx.Identifier{r.Name}.Sanitize()),
			"the relay connects as %s, which lacks REPLICATION: it can neither create its slot nor stream from it%s", r.Name, also))
	}
	return one(ok(name, "the relay connects as %s: REPLICATION, not a superuser%s", r.Name, also))
}

func (o Options) checkRelayRole(ctx context.Context) []Result {
	const name = "relay role"
	role := pgx.Identifier{o.RelayRole}.Sanitize()
	r, err := schema.InspectRole(ctx, o.DB, o.RelayRole)
	switch {
	case err != nil:
		return one(fail(name, "", "%v", err))
	case !r.Exists:
		return one(fail(name, fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD '…'; then eventbus migrate", role),
			"%s does not exist", o.RelayRole))
	case !r.Login || !r.Replication:
		return one(fail(name, fmt.Sprintf("ALTER ROLE %s LOGIN REPLICATION", role),
			"%s needs LOGIN and REPLICATION (login %v, replication %v)", o.RelayRole, r.Login, r.Replication))
	}
	missing, err := schema.MissingRelayGrants(ctx, o.DB, o.RelayRole, schema.RelayRoleOptions{Prune: o.Prune})
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01":
		return nil // no schema: the schema check said so
	case err != nil:
		return one(fail(name, "", "%v", err))
	case len(missing) > 0:
		fix := fmt.Sprintf("eventbus migrate with EVENTBUS_RELAY_ROLE=%s, as the owner of public.event_bus, grants them", o.RelayRole)
		if o.Prune {
			fix += " (with EVENTBUS_RETENTION set, DELETE too)"
		}
		return one(fail(name, fix, "%s lacks what eventbus run needs: %s", o.RelayRole, strings.Join(missing, "; ")))
	case r.Superuser:
		return one(warn(name, leastPrivilegeFix, "%s is a superuser", o.RelayRole))
	}
	return one(ok(name, "%s: LOGIN, REPLICATION, not a superuser, with the grants of eventbus migrate", o.RelayRole))
}

// checkHBA shows the lines of pg_hba.conf that let the relay's role in
// (EVENTBUS_RELAY_ROLE, else the role doctor connects as) and warns on one
// that lets it in from any address. REPLICATION lets that role open
// physical replication connections (database `replication` lines), through
// which it can copy the whole cluster, and create a logical slot of its own
// in a database it may connect to (that database's lines, as for its
// ordinary connections), through which it reads every table: table
// privileges and row-level security do not apply to either. Only where it
// may connect from limits that.
func (o Options) checkHBA(ctx context.Context) []Result {
	const name = "pg_hba"
	h, err := schema.InspectHBA(ctx, o.DB, o.RelayRole)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		role := o.RelayRole
		if role == "" {
			role = "the relay's role"
		}
		return one(warn(name, fmt.Sprintf("run eventbus doctor as a superuser to see it, or read pg_hba.conf yourself: no line should let %s in from any address (README, Running the relay as a least-privilege role)", role),
			"pg_hba.conf could not be read: only superusers may read pg_hba_file_rules (%s)", pgErr.Message))
	case err != nil:
		return one(warn(name, "", "pg_hba.conf could not be read: %v", err))
	}
	physical, physicalOpen := hbaAccess(h.Rules, true)
	database, databaseOpen := hbaAccess(h.Rules, false)
	if physicalOpen == nil && databaseOpen == nil {
		physicalText := "no replication line lets it open physical replication connections (the relay needs none)"
		if len(physical) > 0 {
			physicalText = "physical replication, which the relay never needs, by " + strings.Join(physical, ", ")
		}
		databaseText := "no line lets it connect"
		if len(database) > 0 {
			databaseText = "by " + strings.Join(database, ", ")
		}
		return one(ok(name, "%s may connect to %s (logical replication, the relay's, included) %s; %s; none from any address",
			h.Role, h.Database, databaseText, physicalText))
	}
	var details, fixes []string
	if databaseOpen != nil {
		line := hbaLine(*databaseOpen)
		details = append(details, fmt.Sprintf("%s lets %s connect to %s from any address, logical replication included: with REPLICATION it can read every table of %s through a slot of its own",
			line, h.Role, h.Database, h.Database))
		fixes = append(fixes, fmt.Sprintf("above %s, add 'host %s %s <relay address>/32 scram-sha-256' and 'host all %s all reject' (or restrict that line), then SELECT pg_reload_conf()",
			line, h.Database, h.Role, h.Role))
	}
	if physicalOpen != nil {
		line := hbaLine(*physicalOpen)
		details = append(details, fmt.Sprintf("%s lets %s open physical replication connections from any address: with REPLICATION it can copy the whole cluster (pg_basebackup), which the relay never needs",
			line, h.Role))
		fixes = append(fixes, fmt.Sprintf("restrict %s to the standbys' addresses and role, or add 'host replication %s all reject' above it, then SELECT pg_reload_conf()",
			line, h.Role))
	}
	return one(warn(name, strings.Join(fixes, "; "), "%s", strings.Join(details, "; ")))
}

// hbaAccess walks the lines of one kind (physical replication, or the
// database) as the server tries them for a connection from an unknown
// address: it returns the lines that let the role in, up to the first that
// does from any address (returned as open, nil when there is none). A
// `reject` line from any address (type host) ends the walk: no later line
// is reached from elsewhere. Unix-socket lines (local) are listed and never
// open.
func hbaAccess(rules []schema.HBARule, physical bool) (lets []string, open *schema.HBARule) {
	for _, r := range rules {
		if r.Physical != physical {
			continue
		}
		anywhere := r.Type != "local" && hbaAnyAddress(r)
		if r.Method == "reject" {
			if anywhere && r.Type == "host" {
				return lets, nil
			}
			continue
		}
		lets = append(lets, hbaLine(r))
		if anywhere {
			return lets, &r
		}
	}
	return lets, nil
}

// hbaAnyAddress reports whether a line matches every client address:
// `all`, or a mask of length 0 (0.0.0.0/0, ::/0).
func hbaAnyAddress(r schema.HBARule) bool {
	ones, ok := hbaMaskLen(r.Netmask)
	return r.Address == "all" || ok && ones == 0
}

// hbaMaskLen is the length of a netmask as pg_hba_file_rules shows it
// (255.255.255.0, ffff:ffff::); false when there is none (a host name,
// samehost, samenet, local).
func hbaMaskLen(netmask string) (int, bool) {
	ip := net.ParseIP(netmask)
	if ip == nil {
		return 0, false
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	ones, bits := net.IPMask(ip).Size()
	return ones, bits != 0
}

// hbaLine names a line as its file says it: pg_hba.conf:97 (host
// replication all 0.0.0.0/0 scram-sha-256).
func hbaLine(r schema.HBARule) string {
	file := "pg_hba.conf"
	if r.File != "" {
		file = filepath.Base(r.File)
	}
	fields := []string{r.Type, strings.Join(r.Database, ","), strings.Join(r.User, ",")}
	if addr := r.Address; addr != "" {
		if ones, ok := hbaMaskLen(r.Netmask); ok {
			addr = fmt.Sprintf("%s/%d", addr, ones)
		}
		fields = append(fields, addr)
	}
	return fmt.Sprintf("%s:%d (%s)", file, r.Line, strings.Join(append(fields, r.Method), " "))
}

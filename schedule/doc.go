// Package schedule owns recurring events (CONTRACT.md v2, "Scheduled
// events"): the rows of public.event_schedules, their cron expressions, and
// the relay service that fires their ticks.
//
// # Cron
//
// A schedule's cron is the standard five fields (minute hour day-of-month
// month day-of-week; github.com/robfig/cron/v3's standard parser without
// descriptors such as @daily and without a CRON_TZ= prefix: the zone is
// the timezone column, an IANA name, UTC when empty). Ticks are computed in
// that zone, so "0 9 * * *" in Europe/Berlin is 09:00 Berlin time in summer
// and in winter. Across a daylight saving change (spec_test.go pins it), as
// Vixie cron does for schedules of given hours: a time of day that happens
// twice on the fall-back day fires once, at its first occurrence, and one
// that does not happen on the spring-forward day (02:30 in New York) fires
// once at the first instant after the gap (03:00 local). A schedule whose
// hour field is * fires by absolute time: hourly stays an hour apart.
//
// # Firing a tick, once
//
// Runner is a relay.Service: it runs only on the active relay, the one
// streaming from the replication slot, never on a hot standby. For each
// enabled schedule it computes the latest tick not after now and later than
// last_run_at, and calls public.eventbus_fire_schedule(id, tick), which in
// one transaction moves last_run_at to the tick only if it was before it,
// and calls publish_event with metadata.schedule = the name and
// metadata.scheduled_for = the tick (RFC 3339, UTC) merged into the
// schedule's metadata. The guard is the tick's idempotency key: two relays
// (a takeover under way, a second active relay by mistake) fire a tick
// once between them, and a crash either commits both or neither.
//
// # Missed ticks
//
// Ticks that passed while no relay ran are not replayed one by one: when a
// relay starts again, the latest missed tick of each schedule is published
// once (with its own scheduled_for), and the schedule goes on from there.
// A schedule whose last_run_at is NULL (set so by hand) fires its latest
// tick at once; a new row gets last_run_at = now() by default, so it fires
// from its next tick on. A schedule enabled again after ticks passed fires
// its latest missed tick too (unless the UPDATE also sets last_run_at).
//
// An event publish_event refuses (a bad event type, an organization
// mismatch, a type reserved for the database's triggers) counts as fired:
// the runner logs the database's reason and the next tick tries again.
package schedule

// Package outbox owns every SQL statement on public.event_bus and its
// sibling tables (eventbus_slot_state), and the calls of the SQL functions
// around it: the backfill scan, the status writes of the relay (processed,
// retry_count, failed), redrive (the relay's sweep; process_pending_events
// on request), replay's scan, verify's reads, the monitor's listing, lookup
// and counts, the backlog behind the relay's gauges, publishing through
// publish_event, and pruning. Other packages call these functions; none of
// them writes event_bus SQL of its own.
//
// One Filter selects events wherever they are selected by an operator's
// criteria (replay, the monitor's list), rendered by one where-builder; one
// scanner reads an event row, as the relay publishes it (event.Event) or with
// its delivery columns for the monitor (StoredEvent).
//
// Two ways to run: the Store's methods run on its pool, as the relay and the
// CLI do; the package functions that take a Querier or RowQuerier (ListEvents,
// GetEvent, CountByStatus, CountPerMinute, Publish, ProcessPending) run on
// the connection or transaction they are given. The monitor gives them its
// transaction as its caller (role authenticated, request.jwt.claims set), so
// row level security decides what they see and do.
package outbox

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
//
// # Delayed events
//
// An event whose metadata.deliver_at is a time in the future waits in the
// table, pending: the relay skips its insert when it arrives from the WAL
// and the slot moves on, so the row is the event's only and durable record.
// DelayedRelease, a relay service (the active relay only), sleeps until the
// earliest deliver_at (at most its Poll, to see new ones), then hands the
// due rows back through the replication stream with a redrive message, as
// RedriveSweep and process_pending_events do: one publishing path, in
// commit order, and it waits until the relay has confirmed past the message
// before it looks again. It finds them through migration 0015's partial
// expression index event_bus_deliver_at_idx (eventbus_deliver_at(metadata)
// WHERE metadata ? 'deliver_at' AND pending): an ordinary insert pays the
// predicate only, one jsonb key lookup, and gets no index entry (measured:
// no difference beyond noise; README "Scheduled events"). Every read that
// hands pending rows to the relay leaves a not-yet-due row alone: the
// backfill (ScanPending), the redrive by ids (PendingByIDs, which returns it
// once due), the redrive sweep (which ages it from its deliver_at) and
// process_pending_events.
package outbox

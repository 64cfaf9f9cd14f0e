// Package cdc reads public.event_bus inserts from a PostgreSQL logical
// replication slot (pgoutput) as their transactions commit.
//
// # Slot
//
// Open connects with replication=database and makes sure the slot exists. A
// slot created by Open exports a snapshot (Slot.SnapshotName): rows committed
// before the slot's consistent point are visible in it, rows committed after
// arrive in the stream, so a backfill read in that snapshot and the stream
// together see every row exactly once. The snapshot stays valid only until
// the next command on the replication connection, so the caller imports it
// (SET TRANSACTION SNAPSHOT) before calling Start.
//
// # Stream
//
// Run decodes pgoutput messages into Changes, in commit order:
//
//	Begin(commit LSN, commit time)  Event...  Redrive(ids)...  Commit(end LSN)
//	Position(server WAL end)        -- from keepalives, between transactions
//
// Rows are decoded by column name from the Relation message, never by
// position, so columns added to event_bus later do not shift anything.
//
// # Confirmation
//
// The stream never decides on its own that something is done. The caller
// calls Confirm(lsn) once every event up to that LSN is in JetStream and
// marked in the table; Run reports that position as flush and apply in its
// standby status updates (every StandbyInterval, and at once when the server
// asks). The write position is what was received. Until the first Confirm, the
// slot's own confirmed_flush_lsn is reported, so the slot never moves past
// unconfirmed work, whatever happens to the relay.
//
// A Position change carries the WAL end of a keepalive. Confirming it once
// everything before it is done lets an idle slot advance, so a quiet
// event_bus does not pin WAL.
package cdc

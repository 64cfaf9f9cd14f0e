// Package verify reconciles public.event_bus with the JetStream stream: every
// event marked processed whose created_at lies in a window must be in the
// stream, by id. It finds the loss the relay cannot see: JetStream acked a
// message, the relay marked the row and confirmed the slot, and the server
// lost the message after all (a power loss within its sync_interval, as
// Jepsen showed for NATS 2.12.1 in December 2025). With Repair it publishes
// the missing events again. `eventbus verify` is its command.
//
// # Two reads, table first
//
//  1. The table: the id and created_at of each processed row created in
//     [Since, Until) (outbox.Store.ScanPositions, no payloads) go into a set.
//  2. The stream: an ephemeral ordered consumer, headers only, from
//     Since - Margin to the stream's end (or until every id of the set was
//     seen) marks the ids its messages carry.
//
// What no message carried is missing. The order of the reads matters while
// the relay runs: a row is marked processed only after JetStream acked its
// message, so every row the table read sees processed was stored before the
// stream read began. Read the other way round, an event acked and marked
// between the two reads would be reported missing. Events marked after the
// table read are not verified; none is reported missing falsely.
//
// # Which messages count
//
// The id is read from the Nats-Msg-Id header (see eventID): the event id
// itself, as the relay, a redrive and a repair publish it, or
// <id>:replay:<token> of eventbus replay, a replayed copy counting as the
// event present. Dead letters live in <STREAM>_DLQ, which is not read.
// Messages of no processed event of the window (events created outside it,
// rows pruned since, other producers) are counted, never an error.
//
// # The window
//
// Until defaults to now, Since to DefaultWindow (24 h) before Until. The
// stream is read from Since - Margin (clock skew between the Postgres and
// NATS hosts) to its end, since a message may be stored long after its row
// was created (a backlog, an outage). A stream with max_age moves Since forward to what
// its retention keeps (plan), with a note; a stream with interest or
// work-queue retention removes consumed messages and is refused. A stream
// that dropped its oldest messages by max_msgs, max_bytes or
// max_msgs_per_subject reports their events missing: verify a window it
// still holds.
//
// # Memory and time
//
// The set costs 24 bytes a processed event of the window, 24 MB a million: a
// 16-byte id and an 8-byte created_at in a slice sized by a count first,
// sorted by a bucket of the id and the id (idSet; a map would take 56 bytes;
// BenchmarkIDSet measures it and the lookup). The stream is read with
// headers only: the ids cross the wire, not the payloads. The missing events
// are read back from the table a chunk at a time.
//
// Measured with the built binary under /usr/bin/time, Postgres and NATS on
// the same 2 shared cores: 1,000,000 processed events against 999,900
// messages took 11.5 to 12.6 s at 69 MB resident (the table read at about
// 300,000 rows/s, the stream at about 110,000 messages/s, bound by the
// server); repairing 100,000 missing events added 4 s (23,000/s), 79 MB.
//
// # Repair
//
// Each missing event is published again with publisher.Publish, under its
// own id as Nats-Msg-Id, oldest first, a chunk of PubAcks at a time; rows are
// not changed (they are processed already). A duplicate PubAck is looked
// into (settle): a copy that reached the stream in the meantime counts as
// present; a message the stream's duplicate window remembers but no longer
// holds (deleted by hand, or lost while the server ran) makes the event be
// published as a replay instead, which the window does not block. Repaired
// events arrive after events created later than them: a repair restores
// what the stream holds, not its order. Events the stream refuses are
// reported as rejected.
package verify

/*
Package relay is the pipeline of eventbus: it ties the replication stream
(package cdc) to JetStream (package publisher) and to the status writes of the
event_bus rows (package outbox), and moves the slot's confirmed position only
past events that are acked and marked.

One file a job:

	relay.go       Relay, Options, Run: sessions, retries, standby
	session.go     one session: slot, backfill read, catch-up position, the
	               stages wired together (pipeline)
	dispatcher.go  the publishing stage: backfill, catch-up skips, redrive,
	               per-event failures (failures)
	delayed.go     whether an event is due (metadata.deliver_at)
	acker.go       the marking stage: PubAcks in order, status batches, the
	               status writers, the harvest of a failed session's PubAcks
	ackqueue.go    where the acker takes the next event from (resends first)
	unmarked.go    acked events whose status write failed, for the next session
	tracker.go     what may be confirmed
	services.go    background services: one shape (Service), one list, one
	               owner (runServices); each defined by the package that owns
	               what it works on (cdc.Heartbeat, outbox.RedriveSweep, ...)
	slot.go        slot reset and drop, with the backfill record they need

What the stages observe goes to package metrics.

# One session

A session is one replication connection's life:

		EnsureStream ─▶ cdc.Open (slot: create with snapshot, or resume)
		             ─▶ backfill read opened (new slot, or backfill never finished)
		             ─▶ Start replication ─▶ reader ▶ dispatcher ▶ acker
		             + the services, until the session ends

	  - reader (cdc.Stream.Run) decodes pgoutput into Changes, in commit order,
	    and sends standby status updates with the confirmed position.
	  - dispatcher publishes the backfill rows, then each event of each
	    transaction, asynchronously. The channel to the acker holds at most
	    EVENTBUS_PUBLISH_WINDOW events: that bounds memory and in-flight
	    messages, whatever the backlog or a transaction's size. Above
	    3,000 transactions a second it holds what it receives for up to
	    EVENTBUS_PUBLISH_LINGER (1 ms) and publishes it together, so that
	    NATS gets one write instead of one per event (coalescer); below, it
	    publishes each change as it arrives.
	  - acker waits for each PubAck in publish order and groups acked events
	    into batches (1000 ids or EVENTBUS_STATUS_FLUSH_INTERVAL). After a
	    broker error it waits for the stream to answer, then sends the
	    event and everything queued behind it again; a stream leader that
	    keeps answering "message id in process" for one event for 10 s is
	    asked to step down (inProcessWatch).
	  - two status writers mark the batches processed, one UPDATE … WHERE
	    id = ANY($1) each, and then count their events done in the tracker.
	    The acker keeps collecting PubAcks meanwhile: a slow UPDATE does not
	    stop publishing until both writers are busy and one more batch waits.

A row the stream delivered may not be visible to the status UPDATE yet: a
transaction is decoded once its commit record is flushed, a moment before
other sessions see it (longer under synchronous replication). The status
write then waits for that row while pg_xact_status says its transaction is
still in progress; a row missing although its transaction is over was
deleted, and is skipped with a warning instead of holding the pipeline.

The tracker keeps transactions in stream order with a count of their
unfinished events. The slot is confirmed up to the end LSN of the last
transaction that, with every transaction before it, is committed and done.
That is the only thing that flows backwards, the one back-edge of the
design: acks → marks → tracker → cdc.Stream.Confirm (wired in pipeline).

# Background services

A Service has one method that matters, Run(ctx) error, and runs only while
this relay streams from the slot: runServices starts every service of the
session's list (heartbeat, redrive sweep, release of delayed events, then
Options.Services such as retention and schedules) when streaming starts and
returns once all have stopped, before the session ends. A standby runs none. A service that fails is logged and
stays stopped until the next session; it never stops delivery.

# Failures

Any error of Postgres or NATS ends the session; Run starts a new one after
capped exponential backoff with jitter. The new session resumes from the
slot's confirmed position, so everything not confirmed is decoded and
published again. JetStream drops the copies it already holds (Nats-Msg-Id is
the event id, within the stream's duplicate window) and status updates are
idempotent. Nothing is marked failed for a broker or database outage.

A per-event rejection (event_type that is not a valid subject, a message over
max_payload, a line break in a header value, a row that cannot be decoded) is
recorded on the row: retry_count+1 and error_message. The dispatcher retries
that event in place, with backoff, so no later event overtakes it; when
retry_count reaches EVENTBUS_MAX_RETRIES the row is marked failed and the
stream moves on. A rejection that arrives with the PubAck (the stream refuses
the message) is recorded the same way and retried by restarting the session.

On SIGINT/SIGTERM the reader stops, the dispatcher publishes nothing more,
the acker drains the acks already outstanding (at most
EVENTBUS_SHUTDOWN_TIMEOUT), the status writers write their statuses, and the final standby
status update reports the confirmed position.

# Catching up after a restart

A session resumes from the slot's confirmed position, so it sees again the
transactions an earlier session published and marked but had not yet
confirmed when it died. For transactions that committed before the session
started, the dispatcher looks up the rows' statuses in batches and skips those
already processed or failed: the table is the durable dedup record, so a relay
down for longer than JetStream's duplicate window still publishes nothing
twice. Newer transactions skip the lookup.

# Backfill

A slot created by this relay exports a snapshot; pending rows visible in it
were committed before the slot's start and will never be in the stream, so
they are read in that snapshot and published before the stream's first
change. eventbus_slot_state records when a slot's backfill has completed; a
relay that dies before then backfills again on its next start, without a
snapshot, publishing every pending row (some a second time, which JetStream
deduplicates).

The record also holds the server's WAL timeline (IDENTIFY_SYSTEM) of the
last completed backfill. A failover slot resumed on another timeline is a
promoted standby's synchronized copy; its position may be past events whose
processed marks were lost with the old primary (the slot's position reached
the standby, the WAL of the marks did not), which the slot never streams
again. The session then backfills every pending row, without a snapshot,
like an unfinished backfill. Events the copy is behind on are streamed
again and met by the catch-up lookup: skipped when their mark survived,
published again (and deduplicated) when it did not.

# Redrive

process_pending_events() emits a transactional logical decoding message
(prefix eventbus.redrive) with the ids it hands back. The dispatcher meets it
in the stream, reads those rows that are still pending, and publishes them
inside that transaction's place in the order, with their plain Nats-Msg-Id.

# Delayed events

An insert whose metadata.deliver_at is still ahead is not published: its
transaction completes without it, so the slot moves on, and the pending row
is the event's record (package outbox explains where it waits). When it is
due, outbox.DelayedRelease hands it back with a redrive message, and the
dispatcher publishes it like any redriven row. A deliver_at that is not a
time fails the event at once.
*/
package relay

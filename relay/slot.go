package relay

import (
	"context"

	"github.com/jackc/pglogrepl"

	"github.com/eventbus/eventbus/cdc"
	"github.com/eventbus/eventbus/outbox"
)

// The slot commands an operator runs while no relay (or, with force, a
// running one) streams from the slot. They live here because the relay owns
// the slot's backfill record: openBackfill reads it to decide whether the
// next session republishes the pending rows.

// ResetSlot drops slot and creates it again at the server's current position
// (force: terminate the relay streaming from it first; failover: create it
// as a PostgreSQL 17 failover slot, as EVENTBUS_SLOT_FAILOVER does). The new
// slot decodes only transactions committed after it, so the next run must
// backfill the rows still pending.
//
// The record that slot needs a backfill is written once the slot is free and
// before it is dropped: a reset interrupted after that point still backfills
// on the next run, and a reset refused (the slot is in use and force is not
// set) changes nothing. In the other order, a reset that stopped after
// creating the new slot would leave it marked backfilled, and the rows
// pending before it would never be published.
func ResetSlot(ctx context.Context, store *outbox.Store, dsn, slot string, force, failover bool) (pglogrepl.LSN, error) {
	return cdc.ResetSlot(ctx, dsn, slot, cdc.SlotChange{Force: force, Failover: failover, BeforeDrop: needsBackfill(store, slot)})
}

// DropSlot drops slot (force: see ResetSlot); a missing slot is not an
// error. The next run creates the slot and backfills the rows still pending.
//
// As in ResetSlot, the record that slot needs a backfill is written before
// the drop: a drop interrupted after that point still backfills on the next
// run, and so does a slot created again by other means than the relay (by
// hand, without a snapshot) in the meantime.
func DropSlot(ctx context.Context, store *outbox.Store, dsn, slot string, force bool) error {
	return cdc.DropSlot(ctx, dsn, slot, cdc.SlotChange{Force: force, BeforeDrop: needsBackfill(store, slot)})
}

func needsBackfill(store *outbox.Store, slot string) func(context.Context) error {
	return func(ctx context.Context) error { return store.SetBackfillDone(ctx, slot, false) }
}

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
// (force: see cdc.ResetSlot). The new slot decodes only transactions committed
// after it, so the next run must backfill the rows still pending.
//
// The record that slot needs a backfill is written before the slot is touched:
// a reset interrupted at any point still backfills on the next run. In the
// other order, a reset that stopped after creating the new slot would leave it
// marked backfilled, and the rows pending before it would never be published.
func ResetSlot(ctx context.Context, store *outbox.Store, dsn, slot string, force bool) (pglogrepl.LSN, error) {
	if err := store.SetBackfillDone(ctx, slot, false); err != nil {
		return 0, err
	}
	return cdc.ResetSlot(ctx, dsn, slot, force)
}

// DropSlot drops slot (force: see cdc.ResetSlot); a missing slot is not an
// error. The next run creates the slot and backfills the rows still pending.
//
// As in ResetSlot, the record that slot needs a backfill is written first: a
// drop interrupted at any point still backfills on the next run, and so does a
// slot created again by other means than the relay (by hand, without a
// snapshot) in the meantime.
func DropSlot(ctx context.Context, store *outbox.Store, dsn, slot string, force bool) error {
	if err := store.SetBackfillDone(ctx, slot, false); err != nil {
		return err
	}
	return cdc.DropSlot(ctx, dsn, slot, force)
}

package relay

import (
	"context"
	"time"

	"github.com/eventbus/eventbus/event"
)

// due decides whether e is published now, for its metadata.deliver_at (see
// outbox.DelayedRelease for where delayed events wait). An event from the
// stream (fromStream) whose deliver_at is still ahead is skipped: its row
// stays pending, and DelayedRelease hands it back when it is due. Rows read
// from the table (backfill, redrive) were selected due by the database's
// clock, so only the form of their deliver_at is checked here. A deliver_at
// that is not a time fails the event at once (no retries: it would never
// parse), with the reason as its error_message; the next events go on.
func (d *dispatcher) due(ctx context.Context, x *txn, e *event.Event, fromStream bool) (bool, error) {
	at, ok, err := event.DeliverAt(e.Metadata)
	if err != nil {
		var xid uint32
		if fromStream {
			xid = x.xid
		}
		once := *d.failures
		once.maxRetries = 1
		if _, err := once.record(ctx, e, xid, err); err != nil {
			return false, err
		}
		return false, nil
	}
	if ok && fromStream && at.After(time.Now()) {
		d.log.Debug("delayed event: published when due", "id", e.ID, "deliver_at", at.Format(time.RFC3339Nano))
		return false, nil
	}
	return true, nil
}

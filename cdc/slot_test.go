package cdc

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// slotTaker streams from a slot and, whenever its walsender is terminated,
// connects again 20 ms later: a relay in a hurry (the relay itself waits
// 100 ms or more before it reconnects).
type slotTaker struct {
	takes   atomic.Int64 // sessions that started streaming
	created atomic.Int64 // sessions whose Open created the slot
}

func takeSlotRepeatedly(t *testing.T, dsn, slot string) *slotTaker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	tk := &slotTaker{}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			s, err := Open(ctx, dsn, Options{Slot: slot, Publication: "unused"})
			if err != nil {
				continue // the slot is still held, or being dropped: again
			}
			if s.Slot().Created {
				tk.created.Add(1)
			}
			if s.Start(ctx) == nil {
				tk.takes.Add(1)
				out := make(chan []Change)
				drained := make(chan struct{})
				go func() {
					defer close(drained)
					for range out { // keepalives' positions
					}
				}()
				_ = s.Run(ctx, out) // returns when its walsender is terminated
				close(out)
				<-drained
			}
			_ = s.Close(context.Background())
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return tk
}

func (tk *slotTaker) waitTakes(t *testing.T, n int64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got := tk.takes.Load()
		return got >= n, fmt.Sprintf("the taker streamed %d times, want %d", got, n)
	})
}

// A forced reset, advance or drop terminates the walsender that streams
// from the slot; the process behind it reconnects by itself and may take
// the slot again before the change reaches the server. The change frees the
// slot again instead of failing ("replication slot is active").
func TestForcedSlotChangesWinOverAReconnectingReader(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	ctx := t.Context()
	slot := testenv.UniqueName(t, "slot")
	tk := takeSlotRepeatedly(t, dsn, slot)
	tk.waitTakes(t, 1)
	require.Equal(t, int64(1), tk.created.Load())

	_, err := ResetSlot(ctx, dsn, slot, SlotChange{})
	require.ErrorIs(t, err, ErrSlotActive, "without force a slot in use is refused")

	for i := range 5 {
		taken := tk.takes.Load()
		_, err := ResetSlot(ctx, dsn, slot, SlotChange{Force: true})
		require.NoError(t, err, "forced reset %d", i)
		tk.waitTakes(t, taken+1)
	}

	db, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer db.Close(context.Background())
	var lsn string
	_, err = db.Exec(ctx, `SELECT pg_current_xact_id()`) // a commit record, flushed
	require.NoError(t, err)
	require.NoError(t, db.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn))
	target, err := pglogrepl.ParseLSN(lsn)
	require.NoError(t, err)
	taken := tk.takes.Load()
	_, to, err := AdvanceSlot(ctx, dsn, slot, target, true)
	require.NoError(t, err, "forced advance")
	require.GreaterOrEqual(t, to, target, "the slot is at the flushed position (or the taker confirmed past it)")
	tk.waitTakes(t, taken+1)

	created := tk.created.Load()
	require.NoError(t, DropSlot(ctx, dsn, slot, SlotChange{Force: true}), "forced drop")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return tk.created.Load() > created, "the taker did not find the slot gone (it creates it again)"
	})
}

// Package replay republishes stored events on an operator's request. A
// replayed message carries a fresh Nats-Msg-Id (event id + ":replay:" + a
// token of this replay), so JetStream stores it even inside its duplicate
// window, and the header Eventbus-Replay: true so consumers can tell. Row
// statuses are not touched.
package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
)

// MsgIDMarker stands between the event id and the replay's token in a
// replayed message's Nats-Msg-Id: <event id>:replay:<token>.
const MsgIDMarker = ":replay:"

// Options tune a replay.
type Options struct {
	// DryRun reads and reports the events without publishing them.
	DryRun bool
	// Rate caps events per second; 0 is unlimited.
	Rate float64
	// Window bounds publishes awaiting their PubAck.
	Window int
	// OnEvent is called for every matching event, after its PubAck unless DryRun.
	OnEvent func(e *event.Event)
}

// Result counts what a replay did.
type Result struct {
	Matched   int
	Published int
	// Rejected lists events the broker refused (bad subject, too large), as "id: reason".
	Rejected []string
}

// Run republishes every event matching f, oldest first.
func Run(ctx context.Context, store *outbox.Store, pub *publisher.Publisher, f outbox.Filter, opts Options) (Result, error) {
	if opts.Window <= 0 {
		opts.Window = 256
	}
	var token [4]byte
	_, _ = rand.Read(token[:])
	suffix := MsgIDMarker + hex.EncodeToString(token[:])

	var res Result
	type pending struct {
		e   event.Event
		ack publisher.Ack
	}
	window := make([]pending, 0, opts.Window)
	settle := func() error {
		for _, p := range window {
			err := p.ack.Wait(ctx)
			switch {
			case err == nil:
				res.Published++
				if opts.OnEvent != nil {
					opts.OnEvent(&p.e)
				}
			case errors.Is(err, publisher.ErrRejected):
				res.Rejected = append(res.Rejected, p.e.ID+": "+err.Error())
			default:
				return fmt.Errorf("replay event %s: %w", p.e.ID, err)
			}
		}
		window = window[:0]
		return nil
	}
	start := time.Now()
	n, err := store.Scan(ctx, f, func(e event.Event) error {
		res.Matched++
		if opts.Rate > 0 {
			due := start.Add(time.Duration(float64(res.Matched-1) / opts.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if opts.DryRun {
			if opts.OnEvent != nil {
				opts.OnEvent(&e)
			}
			return nil
		}
		ack, err := pub.Replay(&e, e.ID+suffix)
		if errors.Is(err, publisher.ErrRejected) {
			res.Rejected = append(res.Rejected, e.ID+": "+err.Error())
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay event %s: %w", e.ID, err)
		}
		window = append(window, pending{e: e, ack: ack})
		if len(window) == cap(window) {
			return settle()
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.Matched = n
	return res, settle()
}

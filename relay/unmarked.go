package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/eventbus/eventbus/outbox"
)

// maxUnmarked bounds the acked events kept for the next session. The acker
// stops at the first failed status write, so this is a safety net; past it,
// events are left to the catch-up and JetStream's duplicate window.
const maxUnmarked = 1 << 16

// unmarked are events JetStream acked whose status write failed (the
// database went away mid-session). The Relay keeps them across sessions: the
// next session marks them processed before it streams, so its catch-up
// finds them settled and publishes none of them again, however long the
// outage outlasted the stream's duplicate window.
type unmarked struct {
	mu    sync.Mutex
	marks []outbox.Mark
}

func (u *unmarked) add(marks []outbox.Mark) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, m := range marks {
		if len(u.marks) >= maxUnmarked {
			return
		}
		u.marks = append(u.marks, outbox.Mark{ID: m.ID}) // long committed by the next session
	}
}

// write marks the kept events processed; they stay kept if it fails.
func (u *unmarked) write(ctx context.Context, store *outbox.Store) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.marks) == 0 {
		return 0, nil
	}
	if err := store.MarkProcessed(ctx, u.marks); err != nil && !errors.Is(err, outbox.ErrInvisible) {
		return 0, fmt.Errorf("mark the events the last session had acked: %w", err)
	}
	n := len(u.marks)
	u.marks = nil
	return n, nil
}

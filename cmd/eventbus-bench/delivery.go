package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// counter counts the distinct event ids that reach a stream, read from the
// JSON bodies by an ordered consumer that starts at the stream's end.
type counter struct {
	cc jetstream.ConsumeContext

	mu      sync.Mutex
	seen    map[string]struct{}
	lastNew time.Time // when the latest new id arrived
	badBody error
}

func startCounter(ctx context.Context, js jetstream.JetStream, stream string) (*counter, error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	c := &counter{seen: make(map[string]struct{}, 1<<16)}
	c.cc, err = cons.Consume(c.handle)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return c, nil
}

func (c *counter) handle(msg jetstream.Msg) {
	var body struct {
		ID string `json:"id"`
	}
	err := json.Unmarshal(msg.Data(), &body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || body.ID == "" {
		c.badBody = fmt.Errorf("message on %s without an id: %q", msg.Subject(), msg.Data())
		return
	}
	if _, dup := c.seen[body.ID]; !dup {
		c.seen[body.ID] = struct{}{}
		c.lastNew = time.Now()
	}
}

func (c *counter) count() (int64, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.seen)), c.lastNew, c.badBody
}

// errNotDrained means not every written event arrived within the drain limit.
var errNotDrained = errors.New("not every event was delivered")

// waitFor waits until n distinct ids arrived, or limit passed, and returns
// when the last of them arrived.
func (c *counter) waitFor(ctx context.Context, n int64, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got, last, err := c.count()
		switch {
		case err != nil:
			return last, err
		case got >= n:
			return last, nil
		case time.Now().After(deadline):
			return last, fmt.Errorf("%w: %d of %d after %s", errNotDrained, got, n, limit)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-tick.C:
		}
	}
}

func (c *counter) stop() { c.cc.Stop() }

// deliveryOf turns the writers' load and the arrival of its last event into
// a measurement: delivery rate over the whole scenario (writers' start to the
// last event received) and the time to drain after the writers stopped.
func deliveryOf(l load, lastArrival time.Time) measurement {
	m := measurement{Events: l.events, WriteRate: l.rate()}
	if l.events == 0 {
		return m
	}
	m.DeliveryRate = float64(l.events) / lastArrival.Sub(l.start).Seconds()
	m.DrainSeconds = max(0, lastArrival.Sub(l.end).Seconds())
	return m
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// tally counts distinct event ids as they arrive and, when timed, each new
// id's time from the payload's "t" (unix microseconds, taken by the writer's
// transaction) to its arrival. The stream's counter and the webhook receiver
// both keep one.
type tally struct {
	timed bool

	mu        sync.Mutex
	seen      map[string]struct{}
	lastNew   time.Time // when the latest new id arrived
	latencies []stamped
	badBody   error
}

func newTally(timed bool) *tally {
	return &tally{seen: make(map[string]struct{}, 1<<16), timed: timed}
}

// counter is a tally of the messages that reach a stream, read from the JSON
// bodies by an ordered consumer that starts at the stream's end.
type counter struct {
	*tally
	cc jetstream.ConsumeContext
}

func startCounter(ctx context.Context, js jetstream.JetStream, stream string, timed bool) (*counter, error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	c := &counter{tally: newTally(timed)}
	c.cc, err = cons.Consume(func(msg jetstream.Msg) { c.add(msg.Data(), msg.Subject(), time.Now()) })
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return c, nil
}

func (c *counter) stop() { c.cc.Stop() }

// stamped is one event's latency and the writer's timestamp it started at.
type stamped struct {
	at      time.Time
	latency time.Duration
}

// timedBody is the part of a message a timed tally reads; the plain one
// reads the id alone, to stay fast.
type timedBody struct {
	ID      string `json:"id"`
	Payload struct {
		T int64 `json:"t"`
	} `json:"payload"`
}

// add counts the event whose message body is data, received at received;
// from names where it came from, for an error.
func (c *tally) add(data []byte, from string, received time.Time) {
	var b timedBody
	var err error
	if c.timed {
		err = json.Unmarshal(data, &b)
	} else {
		var id struct {
			ID string `json:"id"`
		}
		err = json.Unmarshal(data, &id)
		b.ID = id.ID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || b.ID == "" || (c.timed && b.Payload.T == 0) {
		c.badBody = fmt.Errorf("message on %s without an id or a timestamp: %q", from, data)
		return
	}
	if _, dup := c.seen[b.ID]; dup {
		return
	}
	c.seen[b.ID] = struct{}{}
	c.lastNew = received
	if c.timed {
		at := time.UnixMicro(b.Payload.T)
		c.latencies = append(c.latencies, stamped{at: at, latency: received.Sub(at)})
	}
}

func (c *tally) count() (int64, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.seen)), c.lastNew, c.badBody
}

// errNotDrained means not every written event arrived within the drain limit.
var errNotDrained = errors.New("not every event was delivered")

// waitFor waits until n distinct ids arrived, or limit passed, and returns
// when the last of them arrived.
func (c *tally) waitFor(ctx context.Context, n int64, limit time.Duration) (time.Time, error) {
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

// latency returns, sorted, the latencies of the events stamped at or after
// since.
func (c *tally) latency(since time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var l []time.Duration
	for _, s := range c.latencies {
		if !s.at.Before(since) {
			l = append(l, s.latency)
		}
	}
	slices.Sort(l)
	return l
}

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

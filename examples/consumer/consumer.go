package main

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says where to consume from and how to retry.
type Config struct {
	URL    string // NATS server(s)
	Stream string // the eventbus stream, EVENTBUS by default
	Filter string // subject filter, e.g. events.lead.>
	Name   string // durable consumer name: one per service
	// MaxDeliver bounds the deliveries of one message (0 or -1: no bound);
	// after the last one the message is terminated (see handle for the
	// dead-letter note).
	MaxDeliver int
	// AckWait is how long JetStream waits for an ack before it redelivers.
	AckWait time.Duration
	// RetryDelay is the Nak delay after the first failure; it grows
	// linearly with each further delivery.
	RetryDelay time.Duration
	// Remember is how many handled event ids are kept for deduplication.
	Remember int
	Log      *slog.Logger
}

// Event is the body of an eventbus message (README.md, "Message format").
type Event struct {
	ID             string          `json:"id"`
	EventType      string          `json:"event_type"`
	AggregateType  string          `json:"aggregate_type"`
	AggregateID    string          `json:"aggregate_id"`
	OrganizationID *string         `json:"organization_id"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      time.Time       `json:"created_at"`
	// Replay is true when `eventbus replay` republished the event (header
	// Eventbus-Replay: true); it is not part of the body.
	Replay bool `json:"-"`
}

// Handler does the service's work for one event. An error makes JetStream
// deliver the event again later.
type Handler func(ctx context.Context, e Event) error

// run connects, creates or updates the durable consumer and handles its
// messages one at a time until ctx ends; it returns nil then.
func run(ctx context.Context, cfg Config, h Handler) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	nc, err := nats.Connect(cfg.URL, nats.Name(cfg.Name), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// Durable: the server remembers what this service acked, across restarts
	// and across the instances that share the name (they split the messages).
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:       cfg.Name,
		FilterSubject: cfg.Filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		// Up to this many messages are out at once. Set 1 when a later event
		// must never be handled before an earlier one that is being retried
		// (strict per-aggregate order, at the cost of throughput).
		MaxAckPending: 1000,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on stream %s: %w", cfg.Name, cfg.Stream, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume %s: %w", cfg.Name, err)
	}
	defer msgs.Stop()
	cfg.Log.Info("consuming", "stream", cfg.Stream, "consumer", cfg.Name, "filter", cfg.Filter)

	c := &consumer{cfg: cfg, handler: h, seen: newSeen(cfg.Remember)}
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				cfg.Log.Info("stopped", "consumer", cfg.Name)
				return nil
			}
			return fmt.Errorf("next message: %w", err)
		}
		c.handle(ctx, m)
	}
}

type consumer struct {
	cfg     Config
	handler Handler
	seen    *seen
}

// handle processes one delivery and settles it: Ack, Nak with delay, or Term.
func (c *consumer) handle(ctx context.Context, m jetstream.Msg) {
	log := c.cfg.Log.With("subject", m.Subject(), "msg_id", m.Headers().Get(jetstream.MsgIDHeader))
	md, err := m.Metadata()
	if err != nil {
		log.Error("not a JetStream message", "err", err)
		return
	}
	var e Event
	if err := json.Unmarshal(m.Data(), &e); err != nil || e.ID == "" {
		// A body that cannot be read will not become readable: stop its
		// redelivery instead of burning MaxDeliver attempts.
		log.Error("unreadable event, terminated", "err", err, "stream_seq", md.Sequence.Stream)
		_ = m.TermWithReason("unreadable body")
		return
	}
	e.Replay = m.Headers().Get("Eventbus-Replay") == "true"
	log = log.With("event_id", e.ID, "delivery", md.NumDelivered)

	// Delivery is at least once: the same event comes again after a lost
	// ack, a redelivery or an `eventbus replay`. Deduplicate by event id, the
	// one key every copy shares (the Nats-Msg-Id of a replay differs).
	//
	// This example remembers ids in memory, which is forgotten on restart. A
	// production service records the id in a table with a unique key, in the
	// same transaction as the work the event causes:
	//
	//	INSERT INTO processed_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING
	//
	// and skips the work when the insert affected no row.
	if c.seen.contains(e.ID) {
		log.Debug("duplicate, acked without handling", "replay", e.Replay)
		c.ack(ctx, m, log)
		return
	}
	if err := c.handler(ctx, e); err != nil {
		if c.cfg.MaxDeliver > 0 && md.NumDelivered >= uint64(c.cfg.MaxDeliver) {
			// The last attempt failed. Terminating makes the server publish an
			// advisory on $JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<stream>.<consumer>
			// (without Term, MAX_DELIVERIES after the last delivery). A
			// dead-letter process subscribes to it, fetches the message by its
			// stream sequence and stores it for a human; `eventbus replay
			// --id` sends the event again once the cause is fixed.
			log.Error("handler failed on the last delivery, terminated: dead letter", "err", err, "stream_seq", md.Sequence.Stream)
			_ = m.TermWithReason("handler failed " + fmt.Sprint(md.NumDelivered) + " times")
			return
		}
		delay := c.cfg.RetryDelay * time.Duration(md.NumDelivered)
		log.Warn("handler failed, redelivery later", "err", err, "delay", delay)
		if err := m.NakWithDelay(delay); err != nil {
			log.Warn("nak", "err", err) // AckWait redelivers it anyway
		}
		return
	}
	c.seen.add(e.ID)
	c.ack(ctx, m, log)
}

// ack waits for the server to confirm the ack (DoubleAck), so that a message
// reported handled is not delivered again after a restart. A lost ack only
// means one redelivery, which the dedup absorbs.
func (c *consumer) ack(ctx context.Context, m jetstream.Msg, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := m.DoubleAck(ctx); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn("ack not confirmed; the message may come again", "err", err)
	}
}

// seen is a bounded set of event ids that forgets the least recently used.
type seen struct {
	max   int
	order *list.List // front: most recent
	ids   map[string]*list.Element
}

func newSeen(capacity int) *seen {
	return &seen{max: capacity, order: list.New(), ids: make(map[string]*list.Element)}
}

func (s *seen) contains(id string) bool {
	el, ok := s.ids[id]
	if ok {
		s.order.MoveToFront(el)
	}
	return ok
}

func (s *seen) add(id string) {
	if el, ok := s.ids[id]; ok {
		s.order.MoveToFront(el)
		return
	}
	s.ids[id] = s.order.PushFront(id)
	if s.order.Len() > s.max {
		oldest := s.order.Back()
		s.order.Remove(oldest)
		delete(s.ids, oldest.Value.(string))
	}
}

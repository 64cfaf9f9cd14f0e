// Package publisher sends events to NATS JetStream: it ensures the stream
// exists, builds each message as CONTRACT.md describes and publishes
// asynchronously, leaving the caller to wait on each PubAck in order.
//
// Errors come in two classes. A RejectedError (errors.Is(err, ErrRejected))
// concerns one event only: invalid subject, message over max_payload, refused
// by the stream. Any other error means the broker is unavailable; the relay
// then keeps the event and retries it later.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/outbox"
)

// Options configures a Publisher.
type Options struct {
	URL           string
	Stream        string
	SubjectPrefix string
	// MaxPending bounds async publishes awaiting their PubAck.
	MaxPending int
	// AckTimeout fails an async publish whose PubAck does not arrive in time.
	AckTimeout time.Duration
	Log        *slog.Logger
}

// Publisher publishes events to one JetStream stream.
type Publisher struct {
	opts Options
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
}

// Connect connects to NATS. The connection reconnects by itself forever;
// publishes during an outage fail or time out and are retried by the relay.
func Connect(ctx context.Context, opts Options) (*Publisher, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.AckTimeout == 0 {
		opts.AckTimeout = 10 * time.Second
	}
	log := opts.Log
	nc, err := nats.Connect(opts.URL,
		nats.Name("eventbus"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(opts.MaxPending+1),
		jetstream.WithPublishAsyncTimeout(opts.AckTimeout),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Publisher{opts: opts, nc: nc, js: js, log: log}, nil
}

// Close closes the NATS connection.
func (p *Publisher) Close() { p.nc.Close() }

// Connected reports whether the NATS connection is up.
func (p *Publisher) Connected() bool { return p.nc.IsConnected() }

// EnsureStream creates the stream over <prefix>.> with file storage when it
// does not exist. An existing stream is left as the operator configured it.
func (p *Publisher) EnsureStream(ctx context.Context) error {
	_, err := p.js.Stream(ctx, p.opts.Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", p.opts.Stream, err)
	}
	_, err = p.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     p.opts.Stream,
		Subjects: []string{p.opts.SubjectPrefix + ".>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s over %s.>: %w", p.opts.Stream, p.opts.SubjectPrefix, err)
	}
	p.log.Info("stream created", "stream", p.opts.Stream, "subjects", p.opts.SubjectPrefix+".>")
	return nil
}

// Ack is an outstanding publish.
type Ack struct{ future jetstream.PubAckFuture }

// Wait blocks until the PubAck arrives, the publish fails, or ctx ends. A
// duplicate PubAck (the stream already holds this id) counts as success.
func (a Ack) Wait(ctx context.Context) error {
	select {
	case <-a.future.Ok():
		return nil
	case err := <-a.future.Err():
		return classify(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ok and Err expose the PubAck future for callers that select on several
// things at once; pass an error from Err through Classify.
func (a Ack) Ok() <-chan *jetstream.PubAck { return a.future.Ok() }
func (a Ack) Err() <-chan error            { return a.future.Err() }

// Classify returns err as a RejectedError when it concerns one event only.
func Classify(err error) error { return classify(err) }

// Publish builds e's message with Nats-Msg-Id = e.ID and publishes it
// asynchronously. Build and size problems return a RejectedError at once.
func (p *Publisher) Publish(e *outbox.Event) (Ack, error) {
	return p.publish(e, e.ID, false)
}

// Replay publishes e again under a fresh Nats-Msg-Id so that JetStream stores
// it even inside the duplicate window, with header Eventbus-Replay: true.
func (p *Publisher) Replay(e *outbox.Event, msgID string) (Ack, error) {
	return p.publish(e, msgID, true)
}

func (p *Publisher) publish(e *outbox.Event, msgID string, replay bool) (Ack, error) {
	m, err := BuildMessage(p.opts.SubjectPrefix, e)
	if err != nil {
		return Ack{}, err
	}
	if replay {
		m.Header[HeaderReplay] = []string{"true"}
	}
	m.Header[jetstream.MsgIDHeader] = []string{msgID}
	if limit := p.nc.MaxPayload(); limit > 0 && int64(wireSize(m)) > limit {
		return Ack{}, rejected("message of %d bytes exceeds the NATS server's max_payload of %d bytes", wireSize(m), limit)
	}
	f, err := p.js.PublishMsgAsync(m)
	if err != nil {
		return Ack{}, classify(err)
	}
	return Ack{future: f}, nil
}

// Package publisher sends events to NATS JetStream: it ensures the stream
// exists, builds each message as CONTRACT.md describes and publishes
// asynchronously, leaving the caller to wait on each PubAck in order
// (acks.go routes each PubAck to its publish).
//
// Errors come in two classes. A RejectedError (errors.Is(err, ErrRejected))
// concerns one event only: invalid subject, message over max_payload, refused
// by the stream. Any other error means the broker is unavailable; the relay
// then keeps the event and retries it later.
package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/natsconn"
)

// Options configures a Publisher.
type Options struct {
	URL string
	// NATSOptions are the connection's credentials and TLS (natsconn.Options).
	NATSOptions   []nats.Option
	Stream        string
	SubjectPrefix string
	// DuplicateWindow and MaxAge configure a stream EnsureStream creates
	// (zero: JetStream's defaults, 2 minutes and unlimited); an existing
	// stream keeps its own.
	DuplicateWindow time.Duration
	MaxAge          time.Duration
	// MaxPending is the most publishes the caller keeps awaiting their
	// PubAck (0: 4096); answers for up to twice as many are buffered until
	// a waiter takes them.
	MaxPending int
	// AckTimeout fails an async publish whose PubAck does not arrive in time.
	AckTimeout time.Duration
	// Catalog, when set, checks every event against its type's schema
	// (catalog.Catalog): Publish refuses one that does not validate with
	// a permanent RejectedError (ErrPermanent), and every message of a
	// registered type carries Eventbus-Event-Version.
	Catalog Checker
	Log     *slog.Logger
}

// Checker tells the Eventbus-Event-Version of e's message ("" for a type
// that is not registered) and refuses e when its payload does not match
// that version's schema; the error's text becomes the error_message.
type Checker interface {
	Check(e *event.Event) (version string, err error)
}

// Publisher publishes events to one JetStream stream.
type Publisher struct {
	opts Options
	nc   *nats.Conn
	js   jetstream.JetStream
	acks *ackRouter
	// failOnDisconnect is acks for the disconnect handler, which nats.go
	// may call before Connect has returned.
	failOnDisconnect atomic.Pointer[ackRouter]
	log              *slog.Logger

	expectStream []string  // header value: the stream's name
	foundOnce    sync.Once // an existing stream's settings are logged once

	closed    chan struct{} // closed when nc is closed for good
	closeOnce sync.Once
	closeErr  error // why, set before closed is closed
}

// Connect connects to NATS. A server that refuses the connection as
// configured (wrong credentials, an untrusted certificate: see
// natsconn.Refused) is an error at once. A server that cannot be reached is
// not: the connection keeps trying in the background, and reconnects by
// itself forever after an outage; publishes meanwhile fail or time out and
// are retried by the relay.
func Connect(ctx context.Context, opts Options) (*Publisher, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.AckTimeout == 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 4096
	}
	log := opts.Log
	p := &Publisher{opts: opts, log: log, closed: make(chan struct{}), expectStream: []string{opts.Stream}}
	where := natsconn.RedactURL(opts.URL)
	natsOpts := append(slices.Clone(opts.NATSOptions),
		nats.Name("eventbus"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
			if acks := p.failOnDisconnect.Load(); acks != nil {
				acks.failAll(nats.ErrDisconnected)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "url", c.ConnectedUrlRedacted(), "server_version", c.ConnectedServerVersion())
		}),
		nats.ConnectHandler(func(c *nats.Conn) {
			log.Info("nats connected", "url", c.ConnectedUrlRedacted(), "server_version", c.ConnectedServerVersion())
		}),
		// Asynchronous errors: an authorization violation on a reconnect,
		// a permission denied on publish.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Error("nats", "err", err) }),
		nats.ClosedHandler(func(c *nats.Conn) {
			p.closeOnce.Do(func() { p.closeErr = c.LastError(); close(p.closed) })
		}),
	)
	// The first attempt tells a refused connection from an unreachable
	// server; only the latter is worth retrying.
	nc, err := nats.Connect(opts.URL, natsOpts...)
	if err != nil {
		if natsconn.Refused(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("connect to NATS %s: %w", where, err)
		}
		log.Warn("nats unavailable; retrying in the background", "url", where, "err", err)
		if nc, err = nats.Connect(opts.URL, append(natsOpts, nats.RetryOnFailedConnect(true))...); err != nil {
			return nil, fmt.Errorf("connect to NATS %s: %w", where, err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	acks, err := newAckRouter(nc, 2*opts.MaxPending+256, opts.AckTimeout, p.closed)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe to PubAcks: %w", err)
	}
	p.nc, p.js, p.acks = nc, js, acks
	p.failOnDisconnect.Store(acks)
	return p, nil
}

// Close closes the NATS connection.
func (p *Publisher) Close() { p.nc.Close() }

// Closed is closed when the connection is closed for good: by Close, or by
// nats.go when a server refused the credentials twice in a row after a
// reconnect (nats.go then stops trying). Err says why.
func (p *Publisher) Closed() <-chan struct{} { return p.closed }

// Err is why the connection closed (nil after Close or while open).
func (p *Publisher) Err() error {
	select {
	case <-p.closed:
		return p.closeErr
	default:
		return nil
	}
}

// Connected reports whether the NATS connection is up.
func (p *Publisher) Connected() bool { return p.nc.IsConnected() }

// EnsureStream creates the stream over <prefix>.> with file storage, the
// duplicate window and the maximum age of Options when it does not exist. An
// existing stream is left as the operator configured it, but it must bind
// every subject the relay publishes to: one that does not is refused with
// ErrStreamUnusable, naming its subjects, since an event no stream takes
// could never be marked. So is a missing stream that cannot be created
// because another stream binds some of those subjects.
func (p *Publisher) EnsureStream(ctx context.Context) error {
	want := p.opts.SubjectPrefix + ".>"
	s, err := p.js.Stream(ctx, p.opts.Stream)
	if err == nil {
		subjects := s.CachedInfo().Config.Subjects
		if !slices.ContainsFunc(subjects, func(f string) bool { return SubjectCovers(f, want) }) {
			return fmt.Errorf("%w: stream %s binds %s, not %s: add %s to its subjects, or set EVENTBUS_STREAM to a stream that binds it",
				ErrStreamUnusable, p.opts.Stream, strings.Join(subjects, ", "), want, want)
		}
		p.foundOnce.Do(func() {
			cfg := s.CachedInfo().Config
			p.log.Info("stream found; its settings are the operator's", "stream", p.opts.Stream, "subjects", strings.Join(subjects, ","),
				"replicas", cfg.Replicas, "duplicate_window", cfg.Duplicates.String(), "max_age", cfg.MaxAge.String())
		})
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return natsconn.Unreachable(ctx, p.nc, p.opts.URL, fmt.Errorf("look up stream %s: %w", p.opts.Stream, err))
	}
	_, err = p.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       p.opts.Stream,
		Subjects:   []string{want},
		Storage:    jetstream.FileStorage,
		Duplicates: p.opts.DuplicateWindow,
		MaxAge:     p.opts.MaxAge,
	})
	if apiErr := (*jetstream.APIError)(nil); errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeSubjectOverlap {
		return fmt.Errorf("%w: cannot create stream %s over %s: stream %s binds subjects in it: set EVENTBUS_STREAM to that stream if it is the relay's, or remove them from it",
			ErrStreamUnusable, p.opts.Stream, want, strings.Join(p.streamsOver(ctx, want), ", "))
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return natsconn.Unreachable(ctx, p.nc, p.opts.URL, fmt.Errorf("create stream %s over %s: %w", p.opts.Stream, want, err))
	}
	p.log.Info("stream created", "stream", p.opts.Stream, "subjects", want,
		"duplicate_window", p.opts.DuplicateWindow.String(), "max_age", p.opts.MaxAge.String())
	return nil
}

// errCodeSubjectOverlap is JetStream's "subjects overlap with an existing
// stream" (JSStreamSubjectOverlapErr), which nats.go does not name.
const errCodeSubjectOverlap jetstream.ErrorCode = 10065

// streamsOver names the streams that bind subjects matching filter, for an
// error message: "another" when the server does not say.
func (p *Publisher) streamsOver(ctx context.Context, filter string) []string {
	var names []string
	l := p.js.StreamNames(ctx, jetstream.WithStreamListSubject(filter))
	for name := range l.Name() {
		names = append(names, name)
	}
	if l.Err() != nil || len(names) == 0 {
		return []string{"another"}
	}
	return names
}

// StreamReady reports whether the stream answers: its leader (the
// server itself, for a stream that is not clustered) replies to an info
// request within a few seconds.
func (p *Publisher) StreamReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := p.js.Stream(ctx, p.opts.Stream); err != nil {
		return fmt.Errorf("stream %s: %w", p.opts.Stream, err)
	}
	return nil
}

// StepDownStreamLeader asks the stream's leader to step down, so that
// another replica leads it (JetStream's STREAM.LEADER.STEPDOWN API; the
// relay's NATS user needs $JS.API.STREAM.LEADER.STEPDOWN.<STREAM>). The relay
// uses it only against a leader that has kept answering ErrInProcess for the
// same event: a new leader holds no proposal of its own for it, so the event
// is stored, or acked as the duplicate it is, once the new leader answers. A
// stream that is not replicated has no other leader: that is an error.
func (p *Publisher) StepDownStreamLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	subject := jetstream.DefaultAPIPrefix + "STREAM.LEADER.STEPDOWN." + p.opts.Stream
	msg, err := p.nc.RequestWithContext(ctx, subject, nil)
	if err != nil {
		return fmt.Errorf("step down the leader of stream %s: %w", p.opts.Stream, err)
	}
	var resp struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("step down the leader of stream %s: %w", p.opts.Stream, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("step down the leader of stream %s: %w", p.opts.Stream, resp.Error)
	}
	if !resp.Success {
		return fmt.Errorf("step down the leader of stream %s: the server did not confirm it", p.opts.Stream)
	}
	return nil
}

// SubjectCovers reports whether the subject filter covers every subject
// that subject (itself a filter, such as events.>) matches: token by token,
// * covers any one token and > covers any rest.
func SubjectCovers(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, ft := range f {
		if ft == ">" {
			return i < len(s)
		}
		if i >= len(s) || s[i] == ">" {
			return false
		}
		if ft != "*" && (ft != s[i] || s[i] == "*") {
			return false
		}
	}
	return len(f) == len(s)
}

// Ack is an outstanding publish. The errors it hands back are classified
// already: a RejectedError (errors.Is(err, ErrRejected)) concerns this event
// only; any other means the broker is unavailable or slow.
type Ack struct {
	router  *ackRouter
	pending *pending
	err     error // a publish that failed before it was sent
}

// FailedAck is an Ack whose publish failed before it was sent with err, for
// callers that handle both kinds of failure in one place.
func FailedAck(err error) Ack { return Ack{err: classify(err)} }

// Wait blocks until the PubAck arrives, the publish fails, or ctx ends. A
// duplicate PubAck (the stream already holds this id) counts as success.
func (a Ack) Wait(ctx context.Context) error {
	_, err := a.WaitOrTick(ctx, nil)
	return err
}

// WaitOrTick is Wait for a caller with a timer to serve while it waits (the
// relay's acker flushes status batches on one): it returns ticked = true,
// the publish still outstanding, when tick fires first. A nil tick never
// fires.
func (a Ack) WaitOrTick(ctx context.Context, tick <-chan time.Time) (ticked bool, err error) {
	if a.err != nil {
		return false, a.err
	}
	ticked, err = a.router.wait(ctx, a.pending, tick)
	return ticked, classify(err)
}

// WaitStored is Wait for a caller that must know where the message is: the
// stream sequence it was stored at or, when duplicate, the sequence of the
// message stored earlier under the same Nats-Msg-Id within the stream's
// duplicate window. That message may be gone: a deleted message's id stays
// in the window (eventbus verify --repair looks).
func (a Ack) WaitStored(ctx context.Context) (seq uint64, duplicate bool, err error) {
	if _, err := a.WaitOrTick(ctx, nil); err != nil {
		return 0, false, err
	}
	return a.pending.seq, a.pending.dup, nil
}

// Publish builds e's message with Nats-Msg-Id = e.ID and publishes it
// asynchronously. Build and size problems return a RejectedError at once.
func (p *Publisher) Publish(e *event.Event) (Ack, error) {
	return p.publish(e, e.ID, false)
}

// Replay publishes e again under a fresh Nats-Msg-Id so that JetStream stores
// it even inside the duplicate window, with header Eventbus-Replay: true.
// Its payload is not checked against the catalog (see publish).
func (p *Publisher) Replay(e *event.Event, msgID string) (Ack, error) {
	return p.publish(e, msgID, true)
}

func (p *Publisher) publish(e *event.Event, msgID string, replay bool) (Ack, error) {
	var version string
	if p.opts.Catalog != nil {
		var err error
		version, err = p.opts.Catalog.Check(e)
		// A replay republishes history as it was first published: it
		// carries the version header, and is not checked against a schema
		// that may have changed since.
		if err != nil && !replay {
			return Ack{}, &RejectedError{Reason: err.Error(), Permanent: true}
		}
	}
	m, err := buildMessage(p.opts.SubjectPrefix, e, version)
	if err != nil {
		return Ack{}, err
	}
	if replay {
		m.Header[HeaderReplay] = []string{"true"}
	}
	m.Header[jetstream.MsgIDHeader] = []string{msgID}
	// Only <STREAM> may store it: an ack from any other stream is an error.
	m.Header[jetstream.ExpectedStreamHeader] = p.expectStream
	if limit := p.nc.MaxPayload(); limit > 0 && int64(wireSize(m)) > limit {
		return Ack{}, rejected("message of %d bytes exceeds the NATS server's max_payload of %d bytes", wireSize(m), limit)
	}
	pending, err := p.acks.publish(m)
	if err != nil {
		return Ack{}, classify(err)
	}
	return Ack{router: p.acks, pending: pending}, nil
}

package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/internal/backoff"
	"github.com/eventbus/eventbus/publisher"
)

// Options configures a Deliverer.
type Options struct {
	Stream        string
	SubjectPrefix string
	// Consumer is the durable consumer's name, shared by every deliverer.
	Consumer    string
	Client      *http.Client // NewClient's: timeouts, no redirects, SSRF checks
	Timeout     time.Duration
	RetryBase   time.Duration
	MaxAttempts int
	// Concurrency bounds the attempts in flight, PerEndpoint those of one
	// endpoint: a slow endpoint holds its own slots, never the others'.
	Concurrency int
	PerEndpoint int
	// ReloadInterval is how often the endpoints are read again.
	ReloadInterval time.Duration
	UserAgent      string
	// DuplicateWindow and MaxAge configure the dead-letter stream when the
	// deliverer is the one to create it (as publisher.EnsureStream would).
	DuplicateWindow, MaxAge time.Duration
	// Metrics counts attempts (nil: none).
	Metrics Metrics
	Log     *slog.Logger
}

// Metrics is what the deliverer reports (metrics.Webhooks).
type Metrics interface {
	Attempted(webhookID, result string, took time.Duration)
}

// Attempt results, for Metrics.
const (
	ResultDelivered = "delivered"
	ResultRetry     = "retry"
	ResultFailed    = "failed"
)

// DefaultConsumer is the durable consumer deliverers share.
const DefaultConsumer = "eventbus-webhooks"

// maxRetryWait caps the backoff and a Retry-After.
const maxRetryWait = time.Hour

func (o *Options) defaults() {
	if o.Consumer == "" {
		o.Consumer = DefaultConsumer
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 5 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = 4
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Deliverer fans the stream's messages out into deliveries and attempts
// them. See the package documentation.
type Deliverer struct {
	opts  Options
	store *Store
	js    jetstream.JetStream

	endpoints atomic.Pointer[map[string]*Endpoint]
	// firstEndpoint is closed once an endpoint exists: until then the
	// deliverer neither creates the consumer nor polls for deliveries, so a
	// relay nobody configured webhooks for pays one query per reload.
	firstEndpoint chan struct{}
	firstOnce     sync.Once
	kick          chan struct{} // a delivery was enqueued: look for due ones now
}

// New returns a Deliverer reading opts.Stream through nc and writing
// deliveries through store.
func New(nc *nats.Conn, store *Store, opts Options) (*Deliverer, error) {
	opts.defaults()
	if opts.Client == nil {
		return nil, errors.New("webhook: Options.Client is required")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	d := &Deliverer{opts: opts, store: store, js: js, kick: make(chan struct{}, 1), firstEndpoint: make(chan struct{})}
	empty := map[string]*Endpoint{}
	d.endpoints.Store(&empty)
	return d, nil
}

// Name names the service in logs.
func (d *Deliverer) Name() string { return "webhooks" }

// Run delivers until ctx ends; it returns nil then. Errors talking to NATS
// or Postgres are retried with backoff.
func (d *Deliverer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { d.reloadLoop(ctx) })
	wg.Go(func() { d.consumeLoop(ctx) })
	wg.Go(func() { d.workLoop(ctx) })
	wg.Wait()
	return nil
}

// Reload reads the endpoints now.
func (d *Deliverer) Reload(ctx context.Context) error {
	list, err := d.store.List(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*Endpoint, len(list))
	for i := range list {
		m[list[i].ID] = &list[i]
	}
	d.endpoints.Store(&m)
	if len(m) > 0 {
		d.firstOnce.Do(func() { close(d.firstEndpoint) })
	}
	return nil
}

// waitFirstEndpoint blocks until an endpoint exists or ctx ends.
func (d *Deliverer) waitFirstEndpoint(ctx context.Context) bool {
	select {
	case <-d.firstEndpoint:
		return true
	case <-ctx.Done():
		return false
	}
}

func (d *Deliverer) reloadLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.ReloadInterval)
	defer t.Stop()
	failing := false
	for {
		switch err := d.Reload(ctx); {
		case err == nil:
			failing = false
		case ctx.Err() != nil:
		case !failing:
			// Once per outage: the next successes and failures are quiet.
			failing = true
			d.opts.Log.Warn("webhooks: reading endpoints failed; keeping the last ones", "err", err)
		default:
			d.opts.Log.Debug("webhooks: reading endpoints failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// consumeLoop reads the stream through the shared durable consumer.
func (d *Deliverer) consumeLoop(ctx context.Context) {
	if !d.waitFirstEndpoint(ctx) {
		return
	}
	wait := backoff.New(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		err := d.consume(ctx)
		if ctx.Err() != nil {
			return
		}
		w := wait.Next()
		d.opts.Log.Warn("webhooks: reading the stream failed; retrying", "err", err, "retry_in", w.Round(time.Millisecond).String())
		if !backoff.Sleep(ctx, w) {
			return
		}
	}
}

func (d *Deliverer) consume(ctx context.Context) error {
	if err := publisher.EnsureDeadLetterStream(ctx, d.js, d.opts.Stream, d.opts.SubjectPrefix, d.opts.DuplicateWindow, d.opts.MaxAge); err != nil && ctx.Err() == nil {
		d.opts.Log.Warn("webhooks: dead-letter stream unavailable; failed deliveries are not copied to it", "err", err)
	}
	cons, err := d.consumer(ctx)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(fanOutBatch))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	// The iterator hands over one message at a time; a reader passes them
	// on so that what has arrived is fanned out together, one statement for
	// a batch (a statement per message bounded the deliverer by the
	// database's round trip).
	msgs := make(chan jetstream.Msg, fanOutBatch)
	var readErr error
	readCtx, stopReading := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopReading(); it.Stop(); wg.Wait() }()
	wg.Go(func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				readErr = err
				return
			}
			select {
			case msgs <- m:
			case <-readCtx.Done():
				return
			}
		}
	})
	batch := make([]jetstream.Msg, 0, fanOutBatch)
	for {
		m, ok := <-msgs
		if !ok {
			// readErr is set before msgs is closed.
			if ctx.Err() != nil || errors.Is(readErr, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return readErr
		}
		batch = append(batch[:0], m)
	more:
		for len(batch) < fanOutBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		if err := d.fanOut(ctx, batch); err != nil {
			// Not acked: redelivered after AckWait, or to another deliverer.
			for _, m := range batch {
				_ = m.Nak()
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, m := range batch {
			_ = m.Ack()
		}
	}
}

// fanOutBatch bounds the messages pulled ahead and fanned out at once.
const fanOutBatch = 256

// oldestEndpoint is the creation time of the oldest endpoint loaded.
func (d *Deliverer) oldestEndpoint() *time.Time {
	var oldest time.Time
	for _, e := range *d.endpoints.Load() {
		if oldest.IsZero() || e.CreatedAt.Before(oldest) {
			oldest = e.CreatedAt
		}
	}
	if oldest.IsZero() {
		oldest = time.Now()
	}
	return &oldest
}

// consumer returns the shared durable consumer, created when missing. An
// existing one is used as it is: its start position is fixed at creation.
func (d *Deliverer) consumer(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := d.js.Consumer(ctx, d.opts.Stream, d.opts.Consumer)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s on stream %s: %w", d.opts.Consumer, d.opts.Stream, err)
	}
	cons, err = d.js.CreateConsumer(ctx, d.opts.Stream, jetstream.ConsumerConfig{
		Durable:       d.opts.Consumer,
		Description:   "eventbus webhook deliverers",
		FilterSubject: d.opts.SubjectPrefix + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		// A new consumer starts at the oldest endpoint's creation: an
		// endpoint receives the events stored after it was created (fanOut
		// checks each endpoint's own), never the stream's older history.
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  d.oldestEndpoint(),
		AckWait:       10 * time.Second, // a killed deliverer's unacked messages come back after it
		MaxAckPending: 1000,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		// Another deliverer created it meanwhile.
		return d.js.Consumer(ctx, d.opts.Stream, d.opts.Consumer)
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on stream %s: %w", d.opts.Consumer, d.opts.Stream, err)
	}
	return cons, nil
}

// fanOut records, in one statement, a delivery of each message of msgs for
// every endpoint that takes it.
func (d *Deliverer) fanOut(ctx context.Context, msgs []jetstream.Msg) error {
	var ds []Delivery
	endpoints := *d.endpoints.Load()
	for _, msg := range msgs {
		h := msg.Headers()
		eventType, org := h.Get(publisher.HeaderEventType), h.Get(publisher.HeaderOrganizationID)
		var stored time.Time
		if meta, err := msg.Metadata(); err == nil {
			stored = meta.Timestamp
		}
		var eventID, messageID string
		for _, e := range endpoints {
			if !e.matches(org, eventType) || stored.Before(e.CreatedAt) {
				continue
			}
			if eventID == "" {
				if eventID = eventIDOf(msg.Data()); eventID == "" {
					d.opts.Log.Warn("webhooks: message without an event id; not delivered", "subject", msg.Subject())
					break
				}
				if messageID = h.Get(jetstream.MsgIDHeader); messageID == "" {
					messageID = eventID
				}
			}
			ds = append(ds, Delivery{WebhookID: e.ID, EventID: eventID, MessageID: messageID, EventType: eventType,
				OrganizationID: org, Body: msg.Data()})
		}
	}
	if len(ds) == 0 {
		return nil
	}
	if err := d.store.Enqueue(ctx, ds); err != nil {
		return fmt.Errorf("record deliveries: %w", err)
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return nil
}

// eventIDOf reads "id" from the start of a message body: the relay writes
// it first ({"id":"<uuid>",…}).
func eventIDOf(body []byte) string {
	const prefix = `{"id":"`
	if !bytes.HasPrefix(body, []byte(prefix)) || len(body) < len(prefix)+36+1 {
		return ""
	}
	id := string(body[len(prefix) : len(prefix)+36])
	if body[len(prefix)+36] != '"' {
		return ""
	}
	return id
}

// queue is the deliveries of one endpoint claimed and waiting for a slot.
type queue struct {
	waiting []Delivery
	busy    int // attempts in flight
}

// workLoop claims due deliveries and attempts them: at most Concurrency at
// once, PerEndpoint of one endpoint. Claimed deliveries wait in their
// endpoint's queue (fewer than 4×PerEndpoint of them, inside the claim's
// lease); an endpoint whose queue is full is left out of the next claims,
// so a slow endpoint keeps its own queue full and takes no slot or claim
// from the others. The loop owns the queues; attempts report back on done.
func (d *Deliverer) workLoop(ctx context.Context) {
	if !d.waitFirstEndpoint(ctx) {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan string, d.opts.Concurrency)
	queues := map[string]*queue{}
	inFlight, queued := 0, 0
	finished := func(id string) {
		inFlight--
		if q := queues[id]; q != nil {
			q.busy--
		}
	}
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	wait := backoff.New(100*time.Millisecond, 5*time.Second)
	for {
		// Start what the slots allow.
		for id, q := range queues {
			for len(q.waiting) > 0 && q.busy < d.opts.PerEndpoint && inFlight < d.opts.Concurrency {
				dl := q.waiting[0]
				q.waiting = q.waiting[1:]
				queued--
				e := (*d.endpoints.Load())[id]
				if e == nil || !e.Enabled {
					_ = d.store.Release(ctx, dl.ID, d.opts.ReloadInterval)
					continue
				}
				q.busy++
				inFlight++
				wg.Go(func() {
					d.attempt(ctx, e, dl)
					done <- id
				})
			}
			if len(q.waiting) == 0 && q.busy == 0 {
				delete(queues, id)
			}
		}
		// Claim more while there is room: twice the slots, counting those
		// in use, and up to 2×PerEndpoint more for an endpoint whose queue
		// is not full.
		if room := 2*d.opts.Concurrency - inFlight - queued; room > 0 {
			perEndpoint := 2 * d.opts.PerEndpoint
			var full []string
			for id, q := range queues {
				if len(q.waiting) >= perEndpoint {
					full = append(full, id)
				}
			}
			// The lease outlasts the wait in a queue (at most 4×PerEndpoint
			// deliveries, PerEndpoint at a time) and the attempt, with room
			// to record the outcome; a deliverer killed meanwhile leaves its
			// rows due again once it has passed.
			claimed, err := d.store.Claim(ctx, room, perEndpoint, full, 5*d.opts.Timeout+5*time.Second)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w := wait.Next()
				d.opts.Log.Warn("webhooks: claiming deliveries failed; retrying", "err", err, "retry_in", w.Round(time.Millisecond).String())
				if !backoff.Sleep(ctx, w) {
					return
				}
				continue
			}
			wait.Reset()
			taken := 0
			for _, dl := range claimed {
				e := (*d.endpoints.Load())[dl.WebhookID]
				switch {
				case e == nil:
					// Created after the last reload (or removed, and its
					// deliveries with it): look again soon.
					_ = d.store.Release(ctx, dl.ID, d.opts.ReloadInterval)
				case !e.Enabled:
					// Kept for when the endpoint is enabled again.
					_ = d.store.Release(ctx, dl.ID, time.Minute)
				default:
					q := queues[dl.WebhookID]
					if q == nil {
						q = &queue{}
						queues[dl.WebhookID] = q
					}
					q.waiting = append(q.waiting, dl)
					queued++
					taken++
				}
			}
			if taken > 0 {
				continue // start them
			}
		}
		select {
		case <-ctx.Done():
			return
		case id := <-done:
			finished(id)
		drain:
			for {
				select {
				case id := <-done:
					finished(id)
				default:
					break drain
				}
			}
		case <-d.kick:
		case <-poll.C:
		}
	}
}

// attempt POSTs one delivery and records the outcome.
func (d *Deliverer) attempt(ctx context.Context, e *Endpoint, dl Delivery) {
	started := time.Now()
	code, retryAfter, err := d.post(ctx, e, dl)
	if ctx.Err() != nil {
		return // stopping: the lease runs out and the delivery is tried again
	}
	took := time.Since(started)
	attempts := dl.Attempts + 1
	status, lastErr, next := StatusPending, "", time.Time{}
	switch {
	case err == nil && code >= 200 && code < 300:
		status = StatusDelivered
	case err == nil && code == http.StatusGone:
		status, lastErr = StatusFailed, "410 Gone: the endpoint is disabled"
		if derr := d.store.Disable(ctx, e.ID); derr != nil {
			d.opts.Log.Warn("webhooks: disabling an endpoint that answered 410 failed", "webhook", e.ID, "err", derr)
		}
		d.opts.Log.Warn("webhooks: endpoint answered 410 Gone; disabled", "webhook", e.ID)
	default:
		if err != nil {
			lastErr = err.Error()
		} else {
			lastErr = fmt.Sprintf("HTTP %d", code)
		}
		if attempts >= d.opts.MaxAttempts {
			status = StatusFailed
		} else {
			next = time.Now().Add(max(retryWait(d.opts.RetryBase, attempts), min(retryAfter, maxRetryWait)))
		}
	}
	if d.opts.Metrics != nil {
		result := map[string]string{StatusDelivered: ResultDelivered, StatusPending: ResultRetry, StatusFailed: ResultFailed}[status]
		d.opts.Metrics.Attempted(e.ID, result, took)
	}
	if err := d.store.Attempted(ctx, dl.ID, status, code, lastErr, next); err != nil {
		d.opts.Log.Warn("webhooks: recording an attempt failed; the delivery is tried again", "delivery", dl.ID, "err", err)
		return
	}
	if status == StatusFailed {
		d.opts.Log.Warn("webhooks: delivery failed", "webhook", e.ID, "event_id", dl.EventID, "attempts", attempts, "err", lastErr)
		d.deadLetter(ctx, e, dl, attempts, lastErr)
	}
}

// deadLetter copies a delivery that ended failed to the dead-letter stream;
// the deliveries table keeps it either way.
func (d *Deliverer) deadLetter(ctx context.Context, e *Endpoint, dl Delivery, attempts int, lastErr string) {
	m := publisher.WebhookDeadLetter(d.opts.SubjectPrefix, e.ID, dl.MessageID, dl.EventType, dl.Body, attempts, lastErr)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := d.js.PublishMsg(ctx, m, jetstream.WithExpectStream(publisher.DeadLetterStream(d.opts.Stream))); err != nil && ctx.Err() == nil {
		d.opts.Log.Warn("webhooks: dead letter not published", "webhook", e.ID, "event_id", dl.EventID, "err", err)
	}
}

// post sends the request: the status code, the Retry-After it asked for,
// or the error that prevented an answer.
func (d *Deliverer) post(ctx context.Context, e *Endpoint, dl Delivery) (int, time.Duration, error) {
	keys, err := signingKeys(e, time.Now())
	if err != nil {
		return 0, 0, err
	}
	ts := time.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(dl.Body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.opts.UserAgent)
	req.Header.Set("webhook-id", dl.MessageID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(keys, dl.MessageID, ts, dl.Body))
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), nil
}

// signingKeys are the endpoint's secret and, during a rotation, the
// previous one.
func signingKeys(e *Endpoint, now time.Time) ([][]byte, error) {
	key, err := ParseSecret(e.Secret)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{key}
	if e.PreviousSecret != "" && now.Before(e.PreviousUntil) {
		if prev, err := ParseSecret(e.PreviousSecret); err == nil {
			keys = append(keys, prev)
		}
	}
	return keys, nil
}

// retryWait is the backoff before attempt n+1: base·2^(n-1), capped, with
// ±20 % jitter so that endpoints failing together do not retry together.
func retryWait(base time.Duration, n int) time.Duration {
	w := base
	for i := 1; i < n && w < maxRetryWait; i++ {
		w *= 2
	}
	w = min(w, maxRetryWait)
	return time.Duration(float64(w) * (0.8 + 0.4*rand.Float64()))
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

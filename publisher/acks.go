package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ackRouter hands each PubAck to the publish it answers. Every publish
// gets a reply subject of its own, <prefix><n>; the server's answers arrive
// on one channel subscription to <prefix>*, which nats.go's read loop fills
// directly, and whoever waits for an ack takes answers off that channel and
// resolves the publishes they answer (its own or others'). So a PubAck costs
// no goroutine hand-off and no timer between the socket and the waiter —
// nats.go's jetstream async publish has both, per message: a subscription
// goroutine that runs the reply callback, and an AfterFunc for the timeout.
type ackRouter struct {
	nc      *nats.Conn
	prefix  string
	replies chan *nats.Msg
	sub     *nats.Subscription
	timeout time.Duration
	closed  <-chan struct{}

	mu      sync.Mutex
	next    uint64
	pending map[uint64]*pending
}

// pending is one publish waiting for its PubAck. Its result fields are
// written once, before done is closed.
type pending struct {
	id       uint64
	msg      *nats.Msg
	deadline time.Time
	retries  int // no-responders answers so far
	done     chan struct{}
	seq      uint64
	dup      bool
	err      error
}

// noResponderRetries and noResponderWait follow nats.go's jetstream
// publish: a "no responders" answer is tried again twice, 250 ms apart,
// before it counts (a stream that is being created or moved).
const (
	noResponderRetries = 2
	noResponderWait    = 250 * time.Millisecond
)

// newAckRouter subscribes to the replies. capacity bounds the answers that
// may wait for a waiter: more publishes than that awaiting their acks would
// make nats.go drop answers (the publishes then time out and are sent
// again).
func newAckRouter(nc *nats.Conn, capacity int, timeout time.Duration, closed <-chan struct{}) (*ackRouter, error) {
	r := &ackRouter{
		nc:      nc,
		prefix:  nc.NewInbox() + ".",
		replies: make(chan *nats.Msg, capacity),
		timeout: timeout,
		closed:  closed,
		pending: make(map[uint64]*pending),
	}
	sub, err := nc.ChanSubscribe(r.prefix+"*", r.replies)
	if err != nil {
		return nil, err
	}
	r.sub = sub
	return r, nil
}

// publish sends m with a reply subject of its own.
func (r *ackRouter) publish(m *nats.Msg) (*pending, error) {
	p := &pending{msg: m, done: make(chan struct{})}
	r.mu.Lock()
	r.next++
	id := r.next
	p.id = id
	r.pending[id] = p
	r.mu.Unlock()
	m.Reply = r.prefix + strconv.FormatUint(id, 36)
	p.deadline = time.Now().Add(r.timeout)
	if err := r.nc.PublishMsg(m); err != nil {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
		return nil, err
	}
	return p, nil
}

// resolve ends p's wait with its outcome.
func (p *pending) resolve(seq uint64, dup bool, err error) {
	p.seq, p.dup, p.err = seq, dup, err
	p.msg = nil
	close(p.done)
}

// pubAckReply is a PubAck or a JetStream error.
type pubAckReply struct {
	Error     *jetstream.APIError `json:"error"`
	Stream    string              `json:"stream"`
	Sequence  uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate"`
}

// deliver resolves the publish that m answers.
func (r *ackRouter) deliver(m *nats.Msg) {
	if len(m.Subject) <= len(r.prefix) {
		return
	}
	id, err := strconv.ParseUint(m.Subject[len(r.prefix):], 36, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	p := r.pending[id]
	if p == nil { // timed out, or failed by a disconnect, already
		r.mu.Unlock()
		return
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		if p.retries < noResponderRetries {
			p.retries++
			msg := p.msg
			r.mu.Unlock()
			time.AfterFunc(noResponderWait, func() { r.republish(p, msg) })
			return
		}
		delete(r.pending, id)
		r.mu.Unlock()
		p.resolve(0, false, jetstream.ErrNoStreamResponse)
		return
	}
	delete(r.pending, id)
	r.mu.Unlock()
	if seq, ok := parsePlainPubAck(m.Data); ok {
		p.resolve(seq, false, nil)
		return
	}
	var ack pubAckReply
	switch err := json.Unmarshal(m.Data, &ack); {
	case err != nil:
		p.resolve(0, false, jetstream.ErrInvalidJSAck)
	case ack.Error != nil:
		p.resolve(0, false, ack.Error)
	case ack.Stream == "":
		p.resolve(0, false, jetstream.ErrInvalidJSAck)
	default:
		p.resolve(ack.Sequence, ack.Duplicate, nil)
	}
}

// parsePlainPubAck reads the PubAck of a message stored anew without a
// JetStream domain, {"stream":"NAME","seq":N}, which the server writes
// byte for byte that way (stream.go, mset.pubAck); ok is false for every
// other answer (duplicates, errors, domains), which take encoding/json.
// Nearly every ack is this one, and decoding it by reflection was a
// twentieth of the relay's CPU per event.
func parsePlainPubAck(data []byte) (seq uint64, ok bool) {
	const head, mid = `{"stream":"`, `","seq":`
	rest, found := bytes.CutPrefix(data, []byte(head))
	if !found {
		return 0, false
	}
	end := bytes.IndexAny(rest, `"\`)
	if end <= 0 || rest[end] != '"' {
		return 0, false
	}
	rest, found = bytes.CutPrefix(rest[end:], []byte(mid))
	if !found || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return 0, false
	}
	digits := rest[:len(rest)-1]
	if len(digits) > 19 { // 20 digits may overflow a uint64
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		seq = seq*10 + uint64(c-'0')
	}
	return seq, true
}

// republish sends a message answered by "no responders" again, unless its
// wait has ended meanwhile.
func (r *ackRouter) republish(p *pending, msg *nats.Msg) {
	r.mu.Lock()
	waiting := r.pending[p.id] == p
	r.mu.Unlock()
	if !waiting {
		return
	}
	if err := r.nc.PublishMsg(msg); err != nil {
		r.fail(p.id, p, err)
	}
}

// fail resolves p with err unless it was resolved meanwhile.
func (r *ackRouter) fail(id uint64, p *pending, err error) {
	r.mu.Lock()
	if r.pending[id] != p {
		r.mu.Unlock()
		return
	}
	delete(r.pending, id)
	r.mu.Unlock()
	p.resolve(0, false, err)
}

// failAll fails every publish waiting for its ack: after a disconnection
// their answers may never come (nats.go's jetstream publish does the same).
func (r *ackRouter) failAll(err error) {
	r.mu.Lock()
	failed := r.pending
	r.pending = make(map[uint64]*pending)
	r.mu.Unlock()
	for _, p := range failed {
		p.resolve(0, false, err)
	}
}

// expire fails p with a timeout once its deadline has passed.
func (r *ackRouter) expire(p *pending) {
	r.fail(p.id, p, jetstream.ErrAsyncPublishTimeout)
}

// wait blocks until p's outcome is known, tick fires (ticked = true, still
// outstanding), ctx ends, or the connection closes. While it waits it
// delivers every answer that arrives. An outcome that has arrived wins over
// a ctx that has ended.
func (r *ackRouter) wait(ctx context.Context, p *pending, tick <-chan time.Time) (ticked bool, err error) {
	for {
		select {
		case <-p.done:
			return false, p.err
		default:
		}
		select {
		case m := <-r.replies:
			r.deliver(m)
			continue
		default:
		}
		break
	}
	d := time.Until(p.deadline)
	if d <= 0 {
		r.expire(p)
		<-p.done
		return false, p.err
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-p.done:
			return false, p.err
		case m := <-r.replies:
			r.deliver(m)
		case <-timer.C:
			r.expire(p)
		case <-tick:
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		case <-r.closed:
			return false, nats.ErrConnectionClosed
		}
	}
}

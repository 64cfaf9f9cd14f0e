package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
	"github.com/eventbus/eventbus/replay"
)

// Options say what to verify and whether to repair.
type Options struct {
	// Since and Until bound the created_at of the events verified:
	// [Since, Until). A zero Until is now, a zero Since DefaultWindow
	// before Until; a Since older than the stream's max_age allows is moved
	// (see plan).
	Since, Until time.Time
	// Repair publishes the missing events again.
	Repair bool
	// List bounds Report.Missing (0: 100); every missing event is counted
	// and, with Repair, republished.
	List int
	// Progress, when set, is told how far each phase is.
	Progress Progress
}

// Progress follows a verification: Start begins a phase ("read events",
// "read stream messages", "republished events") with how many items it
// expects, Add counts one, Done ends the phase.
type Progress interface {
	Start(phase string, total int)
	Add()
	Done()
}

// Missing is a processed event whose id no message of the stream carries.
type Missing struct {
	ID          string    `json:"id"`
	CreatedAt   time.Time `json:"created_at"`
	EventType   string    `json:"event_type"`
	AggregateID string    `json:"aggregate_id"`
}

// Report is what a verification found and did; cmd/eventbus prints it, as
// JSON with verify --json.
type Report struct {
	Stream string `json:"stream"`
	// Since and Until are the window verified: processed events created in
	// [Since, Until).
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// StreamFrom is where the stream was read from: Since - Margin.
	StreamFrom time.Time `json:"stream_from"`
	// Notes say where the window differs from the one asked for.
	Notes []string `json:"notes"`

	// Verified counts the processed events of the window.
	Verified int `json:"verified"`
	// Read counts the stream messages read (from StreamFrom until every
	// event was found or the stream ended); Other those of them that carry
	// no event of the window: events created outside it, rows pruned since,
	// other producers' messages.
	Read  int `json:"stream_messages_read"`
	Other int `json:"other_messages"`

	// MissingCount counts the events of the window no message carries;
	// Missing lists the oldest of them, Options.List at most.
	MissingCount int       `json:"missing"`
	Missing      []Missing `json:"missing_events"`

	// With Repair: Republished counts the missing events published again,
	// AsReplays those of them published as replays (the stream's duplicate
	// window still remembered their ids), Present those a copy of which
	// reached the stream by the time of the repair, Rejected those the
	// stream refused, as "id: reason".
	Republished int      `json:"republished"`
	AsReplays   int      `json:"republished_as_replays"`
	Present     int      `json:"present_at_repair"`
	Rejected    []string `json:"rejected"`
}

// chunk is how many missing events are read back, and republished, at a
// time: one statement, and at most that many publishes awaiting their
// PubAck (the publisher's MaxPending must allow it).
const chunk = 256

// idleTimeout bounds the wait for the next stream message while the stream
// has more: a server gone for that long ends the verification with an error
// rather than a hang.
const idleTimeout = 30 * time.Second

// Run verifies that every processed event of the window is in stream, and
// with opts.Repair republishes through pub those that are not (pub may be
// nil without Repair). The error is nil when the verification ran, whatever
// it found: the caller reads the Report.
func Run(ctx context.Context, store *outbox.Store, stream jetstream.Stream, pub *publisher.Publisher, opts Options) (Report, error) {
	if opts.Repair && pub == nil {
		return Report{}, errors.New("verify: Repair needs a publisher")
	}
	if opts.List <= 0 {
		opts.List = 100
	}
	if opts.Progress == nil {
		opts.Progress = noProgress{}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("read stream info: %w", err)
	}
	name := info.Config.Name
	if info.Config.Retention != jetstream.LimitsPolicy {
		return Report{}, fmt.Errorf("stream %s has %s retention: it removes messages once consumed, so it cannot be verified", name, info.Config.Retention)
	}
	w := plan(opts.Since, opts.Until, time.Now(), info.Config.MaxAge)
	r := Report{Stream: name, Since: w.since, Until: w.until, StreamFrom: w.streamFrom,
		Notes: append([]string{}, w.notes...), Missing: []Missing{}, Rejected: []string{}} // [] in JSON, not null
	if w.empty() {
		return r, nil
	}
	set, err := readTable(ctx, store, w, opts.Progress)
	if err != nil {
		return r, err
	}
	r.Verified = set.left
	if err := readStream(ctx, stream, name, w.streamFrom, set, &r, opts.Progress); err != nil {
		return r, err
	}
	return r, resolve(ctx, store, stream, pub, set.missing(), opts, &r)
}

// processed selects the rows a verification reads: processed ones only, as
// the relay marks a row after JetStream acked it. Rows pending or failed are
// the relay's to deliver.
func processed(f outbox.Filter) outbox.Filter {
	f.Statuses = []string{event.StatusProcessed}
	return f
}

// readTable reads the processed events of the window into a set. It runs
// before the stream is read: every row it sees processed was acked, hence
// stored, before the stream read begins.
func readTable(ctx context.Context, store *outbox.Store, w window, p Progress) (*idSet, error) {
	f := processed(outbox.Filter{Since: w.since, Until: w.until})
	// Counted first for the progress and to size the set at once (a slice
	// that grows holds its old and new arrays for a moment).
	total, err := store.Count(ctx, f)
	if err != nil {
		return nil, err
	}
	set := newIDSet(total)
	p.Start("read events", total)
	defer p.Done()
	_, err = store.ScanPositions(ctx, f, func(pos outbox.Position) error {
		id, ok := parseUUID(pos.ID)
		if !ok {
			return fmt.Errorf("event id %q is not a UUID", pos.ID)
		}
		set.add(id, pos.CreatedAt)
		p.Add()
		return nil
	})
	set.seal()
	return set, err
}

// readStream reads the stream from from to its end, or until every event of
// set was found, and marks the events its messages carry. It reads headers
// only, through an ephemeral ordered consumer: nothing is acked, no other
// consumer is disturbed.
func readStream(ctx context.Context, stream jetstream.Stream, name string, from time.Time, set *idSet, r *Report, p Progress) error {
	if set.left == 0 {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &from,
		HeadersOnly:   true,
	})
	if err != nil {
		return fmt.Errorf("create consumer on stream %s: %w", name, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read stream %s: %w", name, err)
	}
	info := cons.CachedInfo()
	defer func() {
		msgs.Stop()
		// The server removes an ephemeral consumer a while after its
		// client left; removing it now keeps `nats consumer ls` tidy.
		if info != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = stream.DeleteConsumer(ctx, info.Name)
		}
	}()
	var pending uint64
	if info != nil {
		pending = info.NumPending
	}
	p.Start("read stream messages", int(pending))
	defer p.Done()
	if pending == 0 {
		return nil
	}
	defer context.AfterFunc(ctx, msgs.Stop)()
	// An ordered consumer that resets (in a cluster, after a leader change)
	// can hand over a message again: each stream sequence counts once.
	var last uint64
	for {
		m, err := msgs.Next(jetstream.NextMaxWait(idleTimeout))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, nats.ErrTimeout):
			return fmt.Errorf("read stream %s: no message for %s with more to read", name, idleTimeout)
		case err != nil:
			return fmt.Errorf("read stream %s: %w", name, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read stream %s: %w", name, err)
		}
		if md.Sequence.Stream <= last {
			continue
		}
		last = md.Sequence.Stream
		r.Read++
		p.Add()
		if id, ok := eventID(m.Headers().Get(jetstream.MsgIDHeader)); !ok || !set.see(id) {
			r.Other++
		}
		if set.left == 0 || md.NumPending == 0 {
			return nil
		}
	}
}

// resolve reads the missing events back from the table, oldest first, lists
// them, and with Repair republishes them a chunk at a time. A row deleted
// since the table was read (pruned) is neither listed nor counted.
func resolve(ctx context.Context, store *outbox.Store, stream jetstream.Stream, pub *publisher.Publisher, missing []uuid, opts Options, r *Report) error {
	if opts.Repair {
		opts.Progress.Start("republished events", len(missing))
		defer opts.Progress.Done()
	}
	for ids := range slices.Chunk(missing, chunk) {
		f := processed(outbox.Filter{IDs: make([]string, len(ids))})
		for i, id := range ids {
			f.IDs[i] = id.String()
		}
		var acks []sent
		_, err := store.Scan(ctx, f, func(e event.Event) error {
			r.MissingCount++
			if len(r.Missing) < opts.List {
				r.Missing = append(r.Missing, Missing{ID: e.ID, CreatedAt: e.CreatedAt, EventType: e.EventType, AggregateID: e.AggregateID})
			}
			if !opts.Repair {
				return nil
			}
			ack, err := pub.Publish(&e)
			if errors.Is(err, publisher.ErrRejected) {
				r.Rejected = append(r.Rejected, e.ID+": "+err.Error())
				return nil
			}
			if err != nil {
				return fmt.Errorf("republish event %s: %w", e.ID, err)
			}
			acks = append(acks, sent{id: e.ID, ack: ack})
			return nil
		})
		if err != nil {
			return err
		}
		if err := settle(ctx, store, stream, pub, acks, r, opts.Progress); err != nil {
			return err
		}
	}
	return nil
}

// sent is a republished event awaiting its PubAck.
type sent struct {
	id  string
	ack publisher.Ack
}

// settle waits for the PubAcks of one chunk of republished events.
//
// An event republished under its own id is missing, so the stream stores
// it, unless its duplicate window still holds the id. The PubAck then says
// duplicate and names the message held: when that message is there, a copy
// reached the stream after it was read (the relay's redrive, another
// repair) and the event is present; when it is gone (deleted, or lost while
// the server kept running: a restarted server rebuilds the window from what
// it stored), the window would drop every copy under that id for the rest of
// the window, so the event is published again as a replay (fresh
// Nats-Msg-Id, Eventbus-Replay: true), which counts as present.
func settle(ctx context.Context, store *outbox.Store, stream jetstream.Stream, pub *publisher.Publisher, acks []sent, r *Report, p Progress) error {
	var again []string
	for _, s := range acks {
		seq, duplicate, err := s.ack.WaitStored(ctx)
		switch {
		case errors.Is(err, publisher.ErrRejected):
			r.Rejected = append(r.Rejected, s.id+": "+err.Error())
			continue
		case err != nil:
			return fmt.Errorf("republish event %s: %w", s.id, err)
		case !duplicate:
			r.Republished++
			p.Add()
			continue
		}
		_, err = stream.GetMsg(ctx, seq)
		switch {
		case err == nil:
			r.Present++
			p.Add()
		case errors.Is(err, jetstream.ErrMsgNotFound):
			again = append(again, s.id)
		default:
			return fmt.Errorf("look up message %d, a copy of event %s: %w", seq, s.id, err)
		}
	}
	if len(again) == 0 {
		return nil
	}
	res, err := replay.Run(ctx, store, pub, processed(outbox.Filter{IDs: again}), replay.Options{
		OnEvent: func(*event.Event) { p.Add() },
	})
	r.Republished += res.Published
	r.AsReplays += res.Published
	r.Rejected = append(r.Rejected, res.Rejected...)
	return err
}

type noProgress struct{}

func (noProgress) Start(string, int) {}
func (noProgress) Add()              {}
func (noProgress) Done()             {}

package publisher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/natsconn"
)

// Dead-letter headers (CONTRACT.md v2, "Dead letters").
const (
	HeaderError      = "Eventbus-Error"
	HeaderRetryCount = "Eventbus-Retry-Count"
	HeaderWebhookID  = "Eventbus-Webhook-Id"
	// HeaderPayloadOmitted is set on a dead letter whose event's body did
	// not fit (the reason it failed, often): the body is the event without
	// its payload.
	HeaderPayloadOmitted = "Eventbus-Payload-Omitted"
)

// DeadLetterStream is the dead-letter stream of stream: <STREAM>_DLQ.
func DeadLetterStream(stream string) string { return stream + "_DLQ" }

// DeadLetterPrefix is the subject prefix of dead letters: <prefix>_dlq.
func DeadLetterPrefix(prefix string) string { return prefix + "_dlq" }

// invalidTypeToken stands for an event type that is no valid subject (the
// reason such an event failed): its dead letter still needs a subject.
const invalidTypeToken = "_invalid_event_type"

// EnsureDeadLetterStream creates <STREAM>_DLQ over <prefix>_dlq.> like
// EnsureStream creates the stream (file storage, the same duplicate window
// and maximum age) when it does not exist; an existing one is left alone.
func EnsureDeadLetterStream(ctx context.Context, js jetstream.JetStream, stream, prefix string, duplicates, maxAge time.Duration) error {
	name := DeadLetterStream(stream)
	if _, err := js.Stream(ctx, name); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", name, err)
	}
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{DeadLetterPrefix(prefix) + ".>"}, Storage: jetstream.FileStorage,
		Duplicates: duplicates, MaxAge: maxAge,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return nil
}

// EnsureDeadLetterStream creates the dead-letter stream of the publisher's
// stream when it does not exist.
func (p *Publisher) EnsureDeadLetterStream(ctx context.Context) error {
	err := EnsureDeadLetterStream(ctx, p.js, p.opts.Stream, p.opts.SubjectPrefix, p.opts.DuplicateWindow, p.opts.MaxAge)
	if err != nil {
		return natsconn.Unreachable(ctx, p.nc, p.opts.URL, err)
	}
	return nil
}

// DeadLetter builds the dead letter of a failed event: subject
// <prefix>_dlq.<event_type>, the event's message with Nats-Msg-Id
// <id>:failed:<retry_count>, Eventbus-Error and Eventbus-Retry-Count; a body
// over maxBody bytes goes without the payload.
func DeadLetter(prefix string, e *event.Event, retryCount int, errMsg string, maxBody int64) *nats.Msg {
	m := deadLetterMessage(prefix, e)
	m.Subject = DeadLetterPrefix(prefix) + "." + typeToken(e.EventType)
	m.Header[jetstream.MsgIDHeader] = []string{e.ID + ":failed:" + strconv.Itoa(retryCount)}
	m.Header[HeaderError] = []string{oneLine(errMsg)}
	m.Header[HeaderRetryCount] = []string{strconv.Itoa(retryCount)}
	if maxBody > 0 && int64(wireSize(m)) > maxBody {
		lean := *e
		lean.Payload = nil
		m.Data = AppendBody(nil, &lean)
		m.Header[HeaderPayloadOmitted] = []string{"true"}
	}
	return m
}

// WebhookDeadLetter builds the dead letter of a delivery that used up its
// attempts: subject <prefix>_dlq.webhook.<event_type>, the delivered body,
// Nats-Msg-Id <message id>:<webhook id>:failed:<attempts>.
func WebhookDeadLetter(prefix, webhookID, messageID, eventType string, body []byte, attempts int, errMsg string) *nats.Msg {
	m := nats.NewMsg(DeadLetterPrefix(prefix) + ".webhook." + typeToken(eventType))
	m.Data = body
	m.Header[HeaderEventType] = []string{eventType}
	m.Header[HeaderWebhookID] = []string{webhookID}
	m.Header[jetstream.MsgIDHeader] = []string{messageID + ":" + webhookID + ":failed:" + strconv.Itoa(attempts)}
	m.Header[HeaderError] = []string{oneLine(errMsg)}
	m.Header[HeaderRetryCount] = []string{strconv.Itoa(attempts)}
	return m
}

// deadLetterMessage is e's message as BuildMessage makes it, or, for an
// event BuildMessage refuses, its headers and body built without checks.
func deadLetterMessage(prefix string, e *event.Event) *nats.Msg {
	if m, err := BuildMessage(prefix, e); err == nil {
		return m
	}
	m := nats.NewMsg("")
	for _, h := range [...]struct{ name, value string }{
		{HeaderEventType, e.EventType}, {HeaderAggregateType, e.AggregateType},
		{HeaderAggregateID, e.AggregateID}, {HeaderOrganizationID, e.OrganizationID},
	} {
		if h.value != "" {
			m.Header[h.name] = []string{oneLine(h.value)}
		}
	}
	m.Data = AppendBody(nil, e)
	return m
}

// typeToken is eventType when it can be part of a subject, else a stand-in.
func typeToken(eventType string) string {
	if _, err := Subject("x", eventType); err != nil {
		return invalidTypeToken
	}
	return eventType
}

// oneLine makes s fit a header: line breaks become spaces, at most 1 KiB.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
	if len(s) > 1024 {
		s = s[:1024]
	}
	return s
}

// PublishDeadLetter publishes a failed event's dead letter to the
// dead-letter stream and waits for its PubAck.
func (p *Publisher) PublishDeadLetter(ctx context.Context, e *event.Event, retryCount int, errMsg string) error {
	m := DeadLetter(p.opts.SubjectPrefix, e, retryCount, errMsg, p.nc.MaxPayload())
	m.Header[jetstream.ExpectedStreamHeader] = []string{DeadLetterStream(p.opts.Stream)}
	pending, err := p.acks.publish(m)
	if err != nil {
		return err
	}
	ack := Ack{router: p.acks, pending: pending}
	ctx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
	defer cancel()
	return ack.Wait(ctx)
}

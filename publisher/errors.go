package publisher

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrRejected marks a per-event failure: this event cannot be published as it
// is (bad subject, too large, refused by the stream), while others can. The
// relay counts it against the event's retries instead of waiting for the broker.
var ErrRejected = errors.New("event rejected")

// ErrStreamUnusable means the configured stream cannot take the relay's
// events (it does not bind <prefix>.>, or it is missing and another stream
// binds subjects under <prefix>.>); retrying will not help.
var ErrStreamUnusable = errors.New("stream unusable")

// ErrPermanent marks a rejection that no retry can cure: the event's
// payload does not validate against its type's schema (Options.Catalog).
// The relay marks such an event failed at once. Every ErrPermanent is also
// an ErrRejected.
var ErrPermanent = errors.New("event rejected for good")

// ErrInProcess marks JetStream's 409 "duplicate message id is in process"
// (10158): the stream leader holds a message with this Nats-Msg-Id as
// proposed but not yet stored. It is a broker error, not a refusal: the
// event is sent again. Normally the proposal lands within milliseconds; a
// leader that lost it in a leader change can keep answering this until the
// stream's duplicate window has passed, which is what
// Publisher.StepDownStreamLeader is for.
var ErrInProcess = errors.New("message id in process on the stream leader")

// inProcessError keeps the server's text and adds ErrInProcess.
type inProcessError struct{ err error }

func (e *inProcessError) Error() string        { return e.err.Error() }
func (e *inProcessError) Unwrap() error        { return e.err }
func (e *inProcessError) Is(target error) bool { return target == ErrInProcess }

// errCodeMsgIDInProcess is JSStreamDuplicateMessageConflict, which nats.go
// does not name.
const errCodeMsgIDInProcess jetstream.ErrorCode = 10158

// RejectedError is a per-event failure with a reason meant for error_message.
type RejectedError struct {
	Reason string
	// Permanent: retrying cannot help (see ErrPermanent).
	Permanent bool
}

func (e *RejectedError) Error() string { return e.Reason }
func (e *RejectedError) Is(target error) bool {
	return target == ErrRejected || (e.Permanent && target == ErrPermanent)
}

func rejected(format string, args ...any) error {
	return &RejectedError{Reason: fmt.Sprintf(format, args...)}
}

// classify turns a publish or ack error into a RejectedError when it concerns
// this event only; any other error means the broker is unavailable.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrRejected) {
		return err
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return rejected("message exceeds the NATS server's max_payload: %v", err)
	}
	if errors.Is(err, nats.ErrBadSubject) {
		return rejected("invalid subject: %v", err)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return rejected("the stream refused the message: %s", apiErr.Description)
		case errCodeMsgIDInProcess:
			return &inProcessError{err}
		}
	}
	return err
}

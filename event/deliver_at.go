package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// deliverAtKey is what DeliverAt looks for before it parses anything (its
// first byte is rarer in JSON than a quote, so the scan skips faster).
var deliverAtKey = []byte(`deliver_at"`)

// DeliverAt returns the time metadata.deliver_at names: a delayed event is
// published then, not before. ok is false when metadata has no deliver_at
// (or it is JSON null): publish now. An error means deliver_at is there but
// is not an RFC 3339 time in the one form the database's index accepts
// (public.eventbus_deliver_at: 2026-12-01T20:00:00Z, fractions of a second
// and an offset up to ±14:59 allowed); the relay fails such an event at once.
//
// Metadata without the bytes "deliver_at" — nearly every event — costs one
// byte scan; only metadata that mentions it is decoded.
func DeliverAt(metadata []byte) (at time.Time, ok bool, err error) {
	if !bytes.Contains(metadata, deliverAtKey) {
		return time.Time{}, false, nil
	}
	// A map, not a struct: encoding/json matches struct fields without
	// regard to case, and "Deliver_At" is not deliver_at.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(metadata, &fields); err != nil {
		return time.Time{}, false, nil // not an object: no deliver_at
	}
	raw, found := fields["deliver_at"]
	if !found || string(raw) == "null" {
		return time.Time{}, false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, false, fmt.Errorf("metadata.deliver_at is %s, not an RFC 3339 time as a string (e.g. \"2026-12-01T20:00:00Z\")", shorten(raw))
	}
	if !rfc3339Form(s) {
		return time.Time{}, false, fmt.Errorf("metadata.deliver_at %q is not an RFC 3339 time with an offset (e.g. \"2026-12-01T20:00:00Z\")", shorten([]byte(s)))
	}
	at, err = time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("metadata.deliver_at %q is not a valid time: %w", shorten([]byte(s)), err)
	}
	// The database keeps microseconds, rounded: so does the relay.
	return at.Round(time.Microsecond), true, nil
}

// rfc3339Form reports whether s has the form of eventbus_deliver_at's
// pattern (migration 0015):
//
//	^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$
//
// so that the relay and the database agree on which deliver_at are times.
func rfc3339Form(s string) bool {
	digits := func(s string, max ...byte) bool {
		for i := 0; i < len(s); i++ {
			hi := byte('9')
			if i < len(max) {
				hi = max[i]
			}
			if s[i] < '0' || s[i] > hi {
				return false
			}
		}
		return true
	}
	if len(s) < 20 || !digits(s[0:4]) || s[4] != '-' || !digits(s[5:7]) || s[7] != '-' || !digits(s[8:10]) ||
		s[10] != 'T' || !digits(s[11:13], '2') || s[11:13] > "23" || s[13] != ':' || !digits(s[14:16], '5') ||
		s[16] != ':' || !digits(s[17:19], '5') {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && digits(rest[1:3], '1') && rest[1:3] <= "14" &&
		rest[3] == ':' && digits(rest[4:6], '5')
}

// shorten cuts b for an error message.
func shorten(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

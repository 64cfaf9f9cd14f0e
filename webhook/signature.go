package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SecretPrefix starts every webhook secret, as the Standard Webhooks spec
// recommends, so that a secret pasted into the wrong place is recognisable.
const SecretPrefix = "whsec_"

const (
	secretSize    = 32 // bytes NewSecret generates
	minSecretSize = 24
	maxSecretSize = 64
)

// wantSecret begins every ParseSecret error so that the operator sees the
// expected form next to what is wrong with theirs.
const wantSecret = "webhook secret: want whsec_<base64 of 24–64 bytes>"

// NewSecret returns a fresh secret: SecretPrefix followed by the standard
// base64 encoding of 32 random bytes.
func NewSecret() (string, error) {
	key := make([]byte, secretSize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ParseSecret returns the HMAC key of a secret of the form
// whsec_<standard base64 of 24 to 64 bytes>. Its errors never contain the
// secret, so they are safe to log.
func ParseSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New(wantSecret + ", the whsec_ prefix is missing")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// CorruptInputError holds only an offset, never the input.
		return nil, fmt.Errorf("%s, the part after whsec_ is not standard base64: %w", wantSecret, err)
	}
	if len(key) < minSecretSize || len(key) > maxSecretSize {
		return nil, fmt.Errorf("%s, got %d bytes", wantSecret, len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for a delivery: one
// "v1,<base64 HMAC-SHA256>" per key, in the order given, separated by a
// single space. Several keys are for a secret rotation, during which the
// receiver may hold either the old or the new secret. No keys give "".
func Sign(keys [][]byte, id string, timestamp int64, body []byte) string {
	var b strings.Builder
	for i, key := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(key, id, timestamp, body)))
	}
	return b.String()
}

// Verify reports whether any v1 signature in header is valid for the
// delivery under secret. Signatures of other versions are ignored, as the
// spec asks, so that senders can add schemes without breaking receivers.
// An invalid secret verifies nothing. Verify does not check that timestamp
// is recent; replay protection is the caller's.
func Verify(secret string, header string, id string, timestamp int64, body []byte) bool {
	key, err := ParseSecret(secret)
	if err != nil {
		return false
	}
	want := mac(key, id, timestamp, body)
	for _, sig := range strings.Fields(header) {
		version, enc, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

// mac is HMAC-SHA256(key, "<id>.<timestamp>.<body>"), written piecewise so
// that the body is not copied.
func mac(key []byte, id string, timestamp int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, timestamp, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

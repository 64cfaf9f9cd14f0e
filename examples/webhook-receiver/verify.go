package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// tolerance is how far webhook-timestamp may be from the receiver's clock.
// The spec recommends rejecting older deliveries so that a captured request
// cannot be replayed later; newer ones are rejected too, as a sender whose
// clock runs ahead could otherwise mint requests that stay replayable.
const tolerance = 5 * time.Minute

// The handler maps errSignature to 401 and the others to 400: only a
// signature mismatch says the sender may hold a different secret.
var (
	errMalformed = errors.New("malformed webhook headers")
	errSignature = errors.New("no matching signature")
	errTimestamp = errors.New("timestamp outside tolerance")
)

// parseSecret returns the HMAC key of a whsec_<base64> secret. Its errors
// never include the secret, because they end up in logs.
func parseSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("secret: want whsec_<base64>, the whsec_ prefix is missing")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New("secret: want whsec_<base64>, the part after whsec_ is not standard base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("secret: want whsec_<base64 of 24–64 bytes>, got %d bytes", len(key))
	}
	return key, nil
}

// verify checks one delivery as the Standard Webhooks spec describes: the
// timestamp must be within tolerance of now, and at least one v1 signature in
// the space-separated signatureHeader must be the HMAC-SHA256 of
// "<id>.<timestamp>.<body>". The errors wrap errMalformed, errTimestamp or
// errSignature.
func verify(secret, id, timestamp, signatureHeader string, body []byte, now time.Time) error {
	key, err := parseSecret(secret)
	if err != nil {
		return err
	}
	if id == "" || timestamp == "" || signatureHeader == "" {
		return fmt.Errorf("%w: webhook-id, webhook-timestamp and webhook-signature are required", errMalformed)
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || strings.HasPrefix(timestamp, "+") {
		return fmt.Errorf("%w: webhook-timestamp is not decimal unix seconds", errMalformed)
	}
	// Sub saturates instead of overflowing, so absurd timestamps fail here
	// too.
	if d := time.Unix(ts, 0).Sub(now); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s from now", errTimestamp, d.Round(time.Second))
	}

	h := hmac.New(sha256.New, key)
	h.Write([]byte(id + "." + timestamp + "."))
	h.Write(body)
	want := h.Sum(nil)

	sawV1 := false
	for _, sig := range strings.Fields(signatureHeader) {
		version, enc, ok := strings.Cut(sig, ",")
		// Other versions are skipped so that a sender can add a scheme
		// without breaking receivers that do not know it.
		if !ok || version != "v1" {
			continue
		}
		sawV1 = true
		got, err := base64.StdEncoding.DecodeString(enc)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	if !sawV1 {
		return fmt.Errorf("%w: webhook-signature has no v1 signature", errMalformed)
	}
	return errSignature
}

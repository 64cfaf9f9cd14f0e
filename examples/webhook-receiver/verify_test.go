package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventbus/eventbus/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	now     = time.Unix(1700000000, 0)
	nowTS   = strconv.FormatInt(now.Unix(), 10)
	secretA = "whsec_" + base64.StdEncoding.EncodeToString([]byte("secret-a-secret-a-secret-a-32byt"))
	secretB = "whsec_" + base64.StdEncoding.EncodeToString([]byte("secret-b-secret-b-secret-b-32byt"))
)

// sign is the sender's side, written from the spec for these tests.
func sign(t *testing.T, secret, id, ts string, body []byte) string {
	t.Helper()
	key, err := parseSecret(secret)
	require.NoError(t, err)
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "%s.%s.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1","event_type":"lead.created"}`)
	good := sign(t, secretA, "evt_1", nowTS, body)
	rotated := sign(t, secretB, "evt_1", nowTS, body) + " " + good
	old := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)
	future := strconv.FormatInt(now.Add(6*time.Minute).Unix(), 10)
	edge := strconv.FormatInt(now.Add(-5*time.Minute).Unix(), 10)

	for name, tc := range map[string]struct {
		secret, id, ts, sig string
		body                []byte
		want                error
	}{
		"valid":             {secretA, "evt_1", nowTS, good, body, nil},
		"rotated, old key":  {secretA, "evt_1", nowTS, rotated, body, nil},
		"rotated, new key":  {secretB, "evt_1", nowTS, rotated, body, nil},
		"unknown version":   {secretA, "evt_1", nowTS, "v9,xyz " + good, body, nil},
		"at the tolerance":  {secretA, "evt_1", edge, sign(t, secretA, "evt_1", edge, body), body, nil},
		"wrong secret":      {secretB, "evt_1", nowTS, good, body, errSignature},
		"tampered body":     {secretA, "evt_1", nowTS, good, []byte(`{"id":"evt_1","event_type":"lead.deleted"}`), errSignature},
		"tampered id":       {secretA, "evt_2", nowTS, good, body, errSignature},
		"old timestamp":     {secretA, "evt_1", old, sign(t, secretA, "evt_1", old, body), body, errTimestamp},
		"future timestamp":  {secretA, "evt_1", future, sign(t, secretA, "evt_1", future, body), body, errTimestamp},
		"huge timestamp":    {secretA, "evt_1", "9223372036854775807", good, body, errTimestamp},
		"missing id":        {secretA, "", nowTS, good, body, errMalformed},
		"missing timestamp": {secretA, "evt_1", "", good, body, errMalformed},
		"missing signature": {secretA, "evt_1", nowTS, "", body, errMalformed},
		"timestamp in ms":   {secretA, "evt_1", nowTS + "000", good, body, errTimestamp},
		"timestamp not int": {secretA, "evt_1", "1700000000.5", good, body, errMalformed},
		"timestamp signed":  {secretA, "evt_1", "+" + nowTS, good, body, errMalformed},
		"no v1 signature":   {secretA, "evt_1", nowTS, strings.TrimPrefix(good, "v1,"), body, errMalformed},
		"bad base64":        {secretA, "evt_1", nowTS, "v1,!!!!", body, errSignature},
	} {
		t.Run(name, func(t *testing.T) {
			err := verify(tc.secret, tc.id, tc.ts, tc.sig, tc.body, now)
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}

// TestVerifyStandardWebhooksVector is the vector of the Standard Webhooks
// reference libraries' test suites.
func TestVerifyStandardWebhooksVector(t *testing.T) {
	err := verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{"test": 2432232314}`), time.Unix(1614265330, 0))
	assert.NoError(t, err)
}

// TestVerifyAgreesWithEventbus checks this independent implementation
// against the package eventbus signs with.
func TestVerifyAgreesWithEventbus(t *testing.T) {
	keyA, err := webhook.ParseSecret(secretA)
	require.NoError(t, err)
	keyB, err := webhook.ParseSecret(secretB)
	require.NoError(t, err)
	body := []byte(`{"id":"evt_9","event_type":"order.paid"}`)
	header := webhook.Sign([][]byte{keyB, keyA}, "evt_9", now.Unix(), body)
	assert.NoError(t, verify(secretA, "evt_9", nowTS, header, body, now))
	assert.True(t, webhook.Verify(secretA, sign(t, secretA, "evt_9", nowTS, body), "evt_9", now.Unix(), body))
}

func TestParseSecretErrorsHideSecret(t *testing.T) {
	for _, s := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqr*TwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8G"} {
		_, err := parseSecret(s)
		require.Error(t, err, s)
		if s != "" {
			assert.NotContains(t, err.Error(), strings.TrimPrefix(s, "whsec_"))
		}
		assert.Error(t, verify(s, "evt", nowTS, "v1,AAAA", nil, now))
	}
}

// syncBuffer lets the test read what the server goroutines log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHandler(t *testing.T) {
	var logs syncBuffer
	rc := newReceiver(secretA, slog.New(slog.NewTextHandler(&logs, nil)))
	rc.now = func() time.Time { return now }
	srv := httptest.NewServer(rc)
	defer srv.Close()

	post := func(id, sig string, body []byte) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", nowTS)
		req.Header.Set("webhook-signature", sig)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return resp.StatusCode
	}
	body := []byte(`{"id":"evt_1","event_type":"lead.created","payload":{}}`)
	good := sign(t, secretA, "evt_1", nowTS, body)

	assert.Equal(t, http.StatusUnauthorized, post("evt_1", sign(t, secretB, "evt_1", nowTS, body), body))
	assert.Equal(t, http.StatusBadRequest, post("evt_1", "", body))
	assert.NotContains(t, logs.String(), "evt_1", "rejected requests are not processed")

	assert.Equal(t, http.StatusNoContent, post("evt_1", good, body))
	assert.Contains(t, logs.String(), "id=evt_1 event_type=lead.created")
	assert.Equal(t, http.StatusOK, post("evt_1", good, body), "a duplicate is acknowledged")
	assert.Equal(t, 1, strings.Count(logs.String(), "id=evt_1"), "a duplicate is not processed again")

	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	big := bytes.Repeat([]byte("x"), maxBody+1)
	assert.Equal(t, http.StatusRequestEntityTooLarge, post("evt_big", sign(t, secretA, "evt_big", nowTS, big), big))
}

func TestDedupeIsBounded(t *testing.T) {
	rc := newReceiver(secretA, slog.New(slog.DiscardHandler))
	for i := range remember + 1 {
		require.True(t, rc.first(strconv.Itoa(i)))
	}
	assert.Len(t, rc.seen, remember)
	assert.True(t, rc.first("0"), "the oldest id is forgotten")
	assert.False(t, rc.first(strconv.Itoa(remember)), "recent ids are kept")
}

package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewSecret(t *testing.T) {
	s, err := NewSecret()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(s, SecretPrefix))
	key, err := ParseSecret(s)
	require.NoError(t, err)
	assert.Len(t, key, 32)

	other, err := NewSecret()
	require.NoError(t, err)
	assert.NotEqual(t, s, other)
}

// TestSignKnownAnswer computes the signature straight from the spec, with
// nothing from this package but ParseSecret, so that Sign is checked against
// the contract rather than against itself.
func TestSignKnownAnswer(t *testing.T) {
	key := []byte("0123456789abcdefghijklmnopqrstuv")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	id, body := "evt_01", []byte(`{"id":"evt_01","event_type":"lead.created"}`)

	h := hmac.New(sha256.New, key)
	h.Write([]byte(`evt_01.1700000000.{"id":"evt_01","event_type":"lead.created"}`))
	want := "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))

	parsed, err := ParseSecret(secret)
	require.NoError(t, err)
	assert.Equal(t, want, Sign([][]byte{parsed}, id, 1700000000, body))
	assert.True(t, Verify(secret, want, id, 1700000000, body))
}

// TestStandardWebhooksVector is the vector of the Standard Webhooks
// reference libraries' test suites.
func TestStandardWebhooksVector(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts     = 1614265330
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	body := []byte(`{"test": 2432232314}`)
	key, err := ParseSecret(secret)
	require.NoError(t, err)
	assert.Len(t, key, 24)
	assert.Equal(t, want, Sign([][]byte{key}, id, ts, body))
	assert.True(t, Verify(secret, want, id, ts, body))
}

func TestRotation(t *testing.T) {
	oldSecret, err := NewSecret()
	require.NoError(t, err)
	newSecret, err := NewSecret()
	require.NoError(t, err)
	oldKey, err := ParseSecret(oldSecret)
	require.NoError(t, err)
	newKey, err := ParseSecret(newSecret)
	require.NoError(t, err)
	body := []byte(`{"id":"evt_02"}`)

	header := Sign([][]byte{oldKey, newKey}, "evt_02", 1700000000, body)
	sigs := strings.Split(header, " ")
	require.Len(t, sigs, 2)
	assert.Equal(t, Sign([][]byte{oldKey}, "evt_02", 1700000000, body), sigs[0], "order of keys kept")
	assert.Equal(t, Sign([][]byte{newKey}, "evt_02", 1700000000, body), sigs[1], "order of keys kept")

	assert.True(t, Verify(oldSecret, header, "evt_02", 1700000000, body))
	assert.True(t, Verify(newSecret, header, "evt_02", 1700000000, body))
	assert.True(t, Verify(oldSecret, sigs[0], "evt_02", 1700000000, body))
	assert.False(t, Verify(oldSecret, sigs[1], "evt_02", 1700000000, body), "each signature is its own key's")

	third, err := NewSecret()
	require.NoError(t, err)
	assert.False(t, Verify(third, header, "evt_02", 1700000000, body))
	assert.Empty(t, Sign(nil, "evt_02", 1700000000, body))
}

func TestParseSecretRejects(t *testing.T) {
	for name, tc := range map[string]struct{ secret, msg string }{
		"no prefix":    {base64.StdEncoding.EncodeToString(make([]byte, 32)), "prefix is missing"},
		"bad base64":   {"whsec_not*base64!", "not standard base64"},
		"url base64":   {"whsec_" + base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 30))), "not standard base64"},
		"10 bytes":     {"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 10)), "got 10 bytes"},
		"100 bytes":    {"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 100)), "got 100 bytes"},
		"empty":        {"", "prefix is missing"},
		"prefix alone": {"whsec_", "got 0 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			key, err := ParseSecret(tc.secret)
			require.Error(t, err)
			assert.Nil(t, key)
			assert.Contains(t, err.Error(), "want whsec_<base64 of 24–64 bytes>")
			assert.Contains(t, err.Error(), tc.msg)
			if enc := strings.TrimPrefix(tc.secret, SecretPrefix); enc != "" {
				assert.NotContains(t, err.Error(), enc, "the secret must not leak into errors")
			}
			assert.False(t, Verify(tc.secret, "v1,AAAA", "evt", 1, nil))
		})
	}
	for _, n := range []int{24, 64} {
		_, err := ParseSecret("whsec_" + base64.StdEncoding.EncodeToString(make([]byte, n)))
		assert.NoError(t, err, "%d bytes", n)
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	secret, err := NewSecret()
	require.NoError(t, err)
	key, err := ParseSecret(secret)
	require.NoError(t, err)
	body := []byte(`{"id":"evt_03","amount":10}`)
	header := Sign([][]byte{key}, "evt_03", 1700000000, body)
	require.True(t, Verify(secret, header, "evt_03", 1700000000, body))

	assert.False(t, Verify(secret, header, "evt_03", 1700000000, []byte(`{"id":"evt_03","amount":99}`)), "body")
	assert.False(t, Verify(secret, header, "evt_04", 1700000000, body), "id")
	assert.False(t, Verify(secret, header, "evt_03", 1700000001, body), "timestamp")
	// The dots delimit the fields, so moving bytes between them must not verify.
	assert.False(t, Verify(secret, header, "evt_031", 700000000, body), "id/timestamp boundary")
}

func TestVerifyHeaderForms(t *testing.T) {
	secret, err := NewSecret()
	require.NoError(t, err)
	key, err := ParseSecret(secret)
	require.NoError(t, err)
	body := []byte(`{}`)
	good := Sign([][]byte{key}, "evt", 1, body)
	sig := strings.TrimPrefix(good, "v1,")

	for header, want := range map[string]bool{
		good:                           true,
		"v1a,AAAA " + good:             true, // unknown versions are skipped, not fatal
		"v2," + sig:                    false,
		"v1,garbage!! " + good:         true,
		"  " + good + "  ":             true,
		"v1,AAAA v1,BBBB":              false,
		sig:                            false,
		"":                             false,
		"v1," + sig[:len(sig)-4]:       false,
		"v1," + sig + "AAAA":           false,
		"V1," + sig:                    false,
		"v1,AAAA," + sig:               false,
		"v1," + sig + " v1,garbage!!!": true,
	} {
		assert.Equal(t, want, Verify(secret, header, "evt", 1, body), "header %q", header)
	}
}

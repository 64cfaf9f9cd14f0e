package monitor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVerifyJWT(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	secret := []byte(jwtSecret)
	sign := func(header, payload string) string {
		enc := base64.RawURLEncoding
		unsigned := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(unsigned))
		return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
	}
	const hs256 = `{"alg":"HS256","typ":"JWT"}`
	c, err := verifyJWT(sign(hs256, `{"sub":"`+adminA+`","exp":1800000060,"role":"authenticated"}`), secret, now)
	require.NoError(t, err)
	assert.Equal(t, adminA, c.Sub)
	assert.JSONEq(t, `{"sub":"`+adminA+`","exp":1800000060,"role":"authenticated"}`, string(c.raw), "the claims as signed")

	for name, tc := range map[string]struct{ token, want string }{
		"expired":        {sign(hs256, `{"sub":"`+adminA+`","exp":1799999999}`), "expired"},
		"no exp":         {sign(hs256, `{"sub":"`+adminA+`"}`), "no exp"},
		"nbf ahead":      {sign(hs256, `{"sub":"`+adminA+`","exp":1800000600,"nbf":1800000300}`), "not valid yet"},
		"HS512 header":   {sign(`{"alg":"HS512"}`, `{"sub":"`+adminA+`","exp":1800000060}`), "only HS256"},
		"none":           {sign(`{"alg":"none"}`, `{"sub":"`+adminA+`","exp":1800000060}`), "only HS256"},
		"two parts":      {"a.b", "not a JWT"},
		"bad base64":     {"!!.!!.!!", "base64url"},
		"claims a list":  {sign(hs256, `[1]`), "JSON object"},
		"sub not a uuid": {sign(hs256, `{"sub":"bob","exp":1800000060}`), "UUID"},
	} {
		_, err := verifyJWT(tc.token, secret, now)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), tc.want, name)
		}
	}
	_, err = verifyJWT(sign(hs256, `{"sub":"`+adminA+`","exp":1800000060}`), []byte("another secret of enough length 0123"), now)
	assert.ErrorContains(t, err, "bad signature")
}

func FuzzVerifyJWT(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjoxfQ.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		// Never panics, and accepts nothing not signed with the secret.
		if _, err := verifyJWT(token, []byte(jwtSecret), time.Now()); err == nil {
			t.Fatalf("accepted %q", token)
		}
	})
}

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
	hs := &verifier{secret: secret, audience: "authenticated"}
	sign := func(header, payload string) string {
		enc := base64.RawURLEncoding
		unsigned := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(unsigned))
		return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
	}
	const hs256 = `{"alg":"HS256","typ":"JWT"}`
	const good = `{"sub":"` + adminA + `","exp":1800000060,"aud":"authenticated","role":"authenticated"}`
	c, err := hs.verify(t.Context(), sign(hs256, good), now)
	require.NoError(t, err)
	assert.Equal(t, adminA, c.Sub)
	assert.JSONEq(t, good, string(c.raw), "the claims as signed")

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
		"no aud":         {sign(hs256, `{"sub":"`+adminA+`","exp":1800000060,"role":"authenticated"}`), "aud"},
		"other aud":      {sign(hs256, `{"sub":"`+adminA+`","exp":1800000060,"aud":"x","role":"authenticated"}`), "EVENTBUS_JWT_AUDIENCE"},
		"service_role":   {sign(hs256, `{"sub":"`+adminA+`","exp":1800000060,"aud":"authenticated","role":"service_role"}`), "EVENTBUS_ADMIN_TOKEN"},
		"crit":           {sign(`{"alg":"HS256","crit":["exp"]}`, good), "critical"},
		"ES256, no JWKS": {sign(`{"alg":"ES256","kid":"k"}`, good), "EVENTBUS_JWKS_URL is not set"},
	} {
		_, err := hs.verify(t.Context(), tc.token, now)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), tc.want, name)
		}
	}
	other := &verifier{secret: []byte("another secret of enough length 0123"), audience: "authenticated"}
	_, err = other.verify(t.Context(), sign(hs256, good), now)
	assert.ErrorContains(t, err, "bad signature")
	noSecret := &verifier{keys: staticKeys(nil), audience: "authenticated"}
	_, err = noSecret.verify(t.Context(), sign(hs256, good), now)
	assert.ErrorContains(t, err, "EVENTBUS_JWT_SECRET is not set")
}

// FuzzVerifyJWT: whatever the token, the verifier never panics, and accepts
// nothing not signed with one of its keys: the HS256 secret, an EC P-256 or
// an RSA key of its JWKS (whose private halves the fuzzer never sees).
func FuzzVerifyJWT(f *testing.F) {
	ec, rs := testSigners()
	v := &verifier{secret: []byte(jwtSecret), keys: staticKeys(map[string]publicKey{
		ec.kid: ec.public(), rs.kid: rs.public(),
	}), audience: "authenticated"}
	expired := map[string]any{"sub": adminA, "exp": 1, "aud": "authenticated", "role": "authenticated"}
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjoxfQ.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Add(ec.sign(f, expired))
	f.Add(rs.sign(f, expired))
	f.Add(signJWT(f, jwtSecret, expired))
	f.Add(hmacWith(f, `{"alg":"HS256","kid":"`+ec.kid+`"}`, expired, ec.publicBytes()))
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := v.verify(t.Context(), token, time.Now()); err == nil {
			t.Fatalf("accepted %q", token)
		}
	})
}

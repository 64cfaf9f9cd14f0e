package monitor

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// token encodes header and claims and signs them with sign.
func token(tb testing.TB, header string, claims map[string]any, sign func(unsigned []byte) []byte) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(tb, err)
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload)
	return unsigned + "." + enc.EncodeToString(sign([]byte(unsigned)))
}

// hmacWith signs an HS256 token with key, whatever header says.
func hmacWith(tb testing.TB, header string, claims map[string]any, key []byte) string {
	tb.Helper()
	return token(tb, header, claims, func(unsigned []byte) []byte {
		mac := hmac.New(sha256.New, key)
		mac.Write(unsigned)
		return mac.Sum(nil)
	})
}

// testSigner is a private key of the tests, published in a JWKS by its kid.
type testSigner struct {
	kid string
	ec  *ecdsa.PrivateKey
	rsa *rsa.PrivateKey
}

func newECSigner(tb testing.TB, kid string) testSigner {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	return testSigner{kid: kid, ec: key}
}

// testSigners are an EC P-256 key (ec-1) and an RSA 2048 key (rsa-1),
// generated once per test process.
var testSigners = sync.OnceValues(func() (testSigner, testSigner) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return testSigner{kid: "ec-1", ec: ec}, testSigner{kid: "rsa-1", rsa: rs}
})

func (s testSigner) alg() string {
	if s.ec != nil {
		return "ES256"
	}
	return "RS256"
}

// sign returns a token of claims signed with s, its header naming s's alg and kid.
func (s testSigner) sign(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return s.signAs(tb, s.alg(), s.kid, claims)
}

// signAs signs with s whatever alg and kid the header says.
func (s testSigner) signAs(tb testing.TB, alg, kid string, claims map[string]any) string {
	tb.Helper()
	return token(tb, fmt.Sprintf(`{"alg":%q,"typ":"JWT","kid":%q}`, alg, kid), claims, func(unsigned []byte) []byte {
		sum := sha256.Sum256(unsigned)
		if s.ec != nil {
			r, ss, err := ecdsa.Sign(rand.Reader, s.ec, sum[:])
			require.NoError(tb, err)
			sig := make([]byte, 64)
			r.FillBytes(sig[:32])
			ss.FillBytes(sig[32:])
			return sig
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA256, sum[:])
		require.NoError(tb, err)
		return sig
	})
}

// publicBytes is the public key as a confused verifier might take it as an
// HMAC secret: the EC point, or the RSA key's DER.
func (s testSigner) publicBytes() []byte {
	if s.ec != nil {
		b, err := s.ec.PublicKey.Bytes()
		if err != nil {
			panic(err)
		}
		return b
	}
	return x509.MarshalPKCS1PublicKey(&s.rsa.PublicKey)
}

func (s testSigner) publicPEM() []byte {
	var pub any
	if s.ec != nil {
		pub = &s.ec.PublicKey
	} else {
		pub = &s.rsa.PublicKey
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func (s testSigner) public() publicKey {
	if s.ec != nil {
		return publicKey{alg: "ES256", ec: &s.ec.PublicKey}
	}
	return publicKey{alg: "RS256", rsa: &s.rsa.PublicKey}
}

// jwk is s's public key as Supabase's JWKS lists one.
func (s testSigner) jwk() map[string]any {
	enc := base64.RawURLEncoding
	if s.ec != nil {
		b := s.publicBytes()
		return map[string]any{"kty": "EC", "crv": "P-256", "x": enc.EncodeToString(b[1:33]), "y": enc.EncodeToString(b[33:]),
			"kid": s.kid, "alg": "ES256", "use": "sig", "key_ops": []string{"verify"}, "ext": true}
	}
	return map[string]any{"kty": "RSA", "n": enc.EncodeToString(s.rsa.N.Bytes()),
		"e": enc.EncodeToString(big.NewInt(int64(s.rsa.E)).Bytes()), "kid": s.kid, "alg": "RS256", "use": "sig"}
}

// jwksServer serves a JWKS the test changes, and counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []map[string]any
	failing bool
	hits    int
}

func newJWKSServer(t *testing.T, signers ...testSigner) *jwksServer {
	t.Helper()
	j := &jwksServer{}
	j.set(signers...)
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.hits++
		if j.failing {
			http.Error(w, "upstream trouble", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": j.keys})
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jwksServer) set(signers ...testSigner) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys = nil
	for _, s := range signers {
		j.keys = append(j.keys, s.jwk())
	}
}

func (j *jwksServer) fail(failing bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.failing = failing
}

func (j *jwksServer) fetches() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.hits
}

// staticKeys is a key set that never fetches.
func staticKeys(keys map[string]publicKey) *keySet {
	return &keySet{keys: keys, lastTry: time.Now(), minGap: time.Hour, log: slog.New(slog.DiscardHandler)}
}

// userClaims are the claims of a Supabase user's access token.
func userClaims(sub string) map[string]any {
	return map[string]any{"sub": sub, "aud": "authenticated", "role": "authenticated", "exp": time.Now().Add(time.Hour).Unix(),
		"iss": "https://project.supabase.co/auth/v1", "session_id": "s-1"}
}

// with returns claims with the given ones set (nil removes one).
func with(claims map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range claims {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestJWKSVerifiesES256AndRS256(t *testing.T) {
	t.Parallel()
	ec, rs := testSigners()
	jwks := newJWKSServer(t, ec, rs)
	v := &verifier{keys: newKeySet(jwks.URL, testenv.Logger(t)), audience: "authenticated"}
	both := &verifier{secret: []byte(jwtSecret), keys: v.keys, audience: "authenticated"}
	good := userClaims(adminA)

	for _, s := range []testSigner{ec, rs} {
		for _, v := range []*verifier{v, both} {
			c, err := v.verify(t.Context(), s.sign(t, good), time.Now())
			require.NoError(t, err, s.alg())
			assert.Equal(t, adminA, c.Sub)
		}
	}
	_, err := both.verify(t.Context(), userJWT(t, adminA), time.Now())
	require.NoError(t, err, "HS256 beside the JWKS")

	stranger := newECSigner(t, ec.kid) // another key claiming ec-1's kid
	for name, tc := range map[string]struct{ token, want string }{
		"unknown kid":          {newECSigner(t, "ec-9").sign(t, good), `unknown key id "ec-9"`},
		"no kid":               {ec.signAs(t, "ES256", "", good), "no kid"},
		"another key, same id": {stranger.sign(t, good), "bad signature"},
		"expired":              {ec.sign(t, with(good, "exp", time.Now().Add(-time.Minute).Unix())), "expired"},
		"wrong aud":            {rs.sign(t, with(good, "aud", "another-project")), "aud"},
		"no aud":               {rs.sign(t, with(good, "aud", nil)), "aud"},
		"role service_role":    {ec.sign(t, with(good, "role", "service_role")), "role"},
		"role anon":            {ec.sign(t, with(good, "role", "anon")), "role"},
		"alg none":             {token(t, `{"alg":"none","kid":"ec-1"}`, good, func([]byte) []byte { return nil }), "only HS256, ES256 and RS256"},
		"alg ES512":            {ec.signAs(t, "ES512", ec.kid, good), "only HS256, ES256 and RS256"},
		"RS256 with an EC key": {ec.signAs(t, "RS256", ec.kid, good), "is an ES256 key"},
		"ES256 with RSA's kid": {ec.signAs(t, "ES256", rs.kid, good), "is an RS256 key"},
	} {
		_, err := v.verify(t.Context(), tc.token, time.Now())
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), tc.want, name)
		}
	}

	// Alg confusion: an HS256 token whose HMAC key is a public key, in any
	// of its usual encodings, with and without a secret configured.
	for _, s := range []testSigner{ec, rs} {
		jwk, err := json.Marshal(s.jwk())
		require.NoError(t, err)
		for form, key := range map[string][]byte{"raw": s.publicBytes(), "PEM": s.publicPEM(), "JWK": jwk} {
			forged := hmacWith(t, fmt.Sprintf(`{"alg":"HS256","typ":"JWT","kid":%q}`, s.kid), good, key)
			_, err := v.verify(t.Context(), forged, time.Now())
			assert.ErrorContains(t, err, "EVENTBUS_JWT_SECRET is not set", "%s public key as %s", s.alg(), form)
			_, err = both.verify(t.Context(), forged, time.Now())
			assert.ErrorContains(t, err, "bad signature", "%s public key as %s, with a secret", s.alg(), form)
		}
	}
}

func TestJWKSKeyRotation(t *testing.T) {
	t.Parallel()
	ec, _ := testSigners()
	next := newECSigner(t, "ec-2")
	jwks := newJWKSServer(t, ec)
	ks := newKeySet(jwks.URL, testenv.Logger(t))
	ks.minGap = 0
	v := &verifier{keys: ks, audience: "authenticated"}

	_, err := v.verify(t.Context(), ec.sign(t, userClaims(adminA)), time.Now())
	require.NoError(t, err)
	_, err = v.verify(t.Context(), next.sign(t, userClaims(adminA)), time.Now())
	require.ErrorContains(t, err, "unknown key id", "not published yet")

	jwks.set(ec, next) // the project rotates: the new key appears beside the old
	_, err = v.verify(t.Context(), next.sign(t, userClaims(adminA)), time.Now())
	require.NoError(t, err, "the unknown kid fetched the set again")
	jwks.set(next) // and the old key is revoked
	_, err = v.verify(t.Context(), newECSigner(t, "ec-3").sign(t, userClaims(adminA)), time.Now())
	require.ErrorContains(t, err, "unknown key id")
	_, err = v.verify(t.Context(), ec.sign(t, userClaims(adminA)), time.Now())
	assert.ErrorContains(t, err, "unknown key id", "a key gone from the set no longer verifies")
}

func TestJWKSUnknownKidsAreRateLimited(t *testing.T) {
	t.Parallel()
	ec, _ := testSigners()
	jwks := newJWKSServer(t, ec)
	v := &verifier{keys: newKeySet(jwks.URL, testenv.Logger(t)), audience: "authenticated"} // minGap 30 s
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := v.verify(t.Context(), newECSigner(t, fmt.Sprintf("random-%d", i)).sign(t, userClaims(adminA)), time.Now())
			assert.ErrorContains(t, err, "unknown key id")
		})
	}
	wg.Wait()
	assert.Equal(t, 1, jwks.fetches(), "50 unknown kids within the gap: one fetch")
	_, err := v.verify(t.Context(), ec.sign(t, userClaims(adminA)), time.Now())
	assert.NoError(t, err)
}

// runKeySet runs ks until the test ends, and waits for it to stop.
func runKeySet(t *testing.T, ks *keySet) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ks.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// eventually polls cond every 10 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJWKSFetchFailureKeepsTheLastGoodSet(t *testing.T) {
	t.Parallel()
	ec, rs := testSigners()
	jwks := newJWKSServer(t, ec, rs)
	logs := &logBuffer{}
	ks := newKeySet(jwks.URL, slog.New(slog.NewJSONHandler(logs, nil)))
	ks.tick, ks.refreshEvery = 10*time.Millisecond, 10*time.Millisecond
	runKeySet(t, ks)
	v := &verifier{keys: ks, audience: "authenticated"}
	eventually(t, "the first fetch", func() bool { _, ok := ks.lookup(ec.kid); return ok })

	jwks.fail(true)
	failed := jwks.fetches()
	eventually(t, "two failed fetches", func() bool { return jwks.fetches() >= failed+2 })
	for _, s := range []testSigner{ec, rs} {
		_, err := v.verify(t.Context(), s.sign(t, userClaims(adminA)), time.Now())
		assert.NoError(t, err, "%s: the last good set is kept", s.alg())
	}
	var warned bool
	for _, line := range logs.lines(t) {
		if line["level"] == "WARN" && strings.Contains(fmt.Sprint(line["msg"]), "keeping the last good key set") {
			warned = true
			assert.Contains(t, line["err"], "502")
			assert.Equal(t, float64(2), line["keys"])
		}
	}
	assert.True(t, warned, "the failure is logged")

	jwks.set(rs)
	jwks.fail(false)
	eventually(t, "the set fetched again once the URL answers", func() bool { _, ok := ks.lookup(ec.kid); return !ok })
}

func TestJWKSRefreshedPeriodically(t *testing.T) {
	t.Parallel()
	ec, _ := testSigners()
	next := newECSigner(t, "ec-2")
	jwks := newJWKSServer(t, ec)
	ks := newKeySet(jwks.URL, testenv.Logger(t))
	ks.tick, ks.refreshEvery = 10*time.Millisecond, 50*time.Millisecond // minGap stays 30 s: only Run fetches
	runKeySet(t, ks)
	eventually(t, "the fetch at start", func() bool { return jwks.fetches() >= 1 })
	jwks.set(ec, next)
	eventually(t, "the new key, from a periodic fetch", func() bool { _, ok := ks.lookup(next.kid); return ok })
	n := jwks.fetches()
	assert.Less(t, n, 20, "every refreshEvery, not every tick: %d fetches", n)
}

func TestParseJWKSLeavesOutWhatItCannotUse(t *testing.T) {
	ec, rs := testSigners()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384Point, err := p384.PublicKey.Bytes()
	require.NoError(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	enc := base64.RawURLEncoding
	set := map[string]any{"keys": []map[string]any{
		ec.jwk(), rs.jwk(),
		{"kty": "oct", "kid": "hs", "k": enc.EncodeToString([]byte(jwtSecret))},
		with(ec.jwk(), "kid", "enc", "use", "enc"),
		with(ec.jwk(), "kid", "no-verify", "key_ops", []string{"encrypt"}),
		with(ec.jwk(), "kid", "alg-mismatch", "alg", "RS256"),
		with(rs.jwk(), "kid", "rsa-as-es", "alg", "ES256"),
		with(ec.jwk(), "kid", nil),
		with(ec.jwk(), "kid", "p384", "crv", "P-384", "x", enc.EncodeToString(p384Point[1:49]), "y", enc.EncodeToString(p384Point[49:])),
		with(ec.jwk(), "kid", "off-curve", "y", enc.EncodeToString(make([]byte, 32))),
		{"kty": "RSA", "kid": "rsa-1024", "n": enc.EncodeToString(small.N.Bytes()), "e": "AQAB"},
		with(rs.jwk(), "kid", ec.kid), // a second ec-1
	}}
	body, err := json.Marshal(set)
	require.NoError(t, err)
	keys, skipped, err := parseJWKS(body)
	require.NoError(t, err)
	assert.Len(t, keys, 2)
	assert.Equal(t, "ES256", keys[ec.kid].alg)
	assert.Equal(t, "RS256", keys[rs.kid].alg)
	assert.Len(t, skipped, 10, "%q", skipped)

	for _, bad := range []string{``, `[]`, `{}`, `{"keys": 1}`, `<html>`} {
		_, _, err := parseJWKS([]byte(bad))
		assert.Error(t, err, bad)
	}
}

// TestJWKSSignsInAnAdmin: through the API, an admin's ES256 token opens the
// monitor like an HS256 one, and a member's is refused as before.
func TestJWKSSignsInAnAdmin(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ec, rs := testSigners()
	jwks := newJWKSServer(t, ec, rs)
	mon := New(Options{Pool: e.pool, JWKSURL: jwks.URL, Log: testenv.Logger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); mon.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.srv = httptest.NewServer(mon)
	t.Cleanup(e.srv.Close)

	for name, tc := range map[string]struct {
		token string
		want  int
	}{
		"ES256 admin":                {ec.sign(t, userClaims(adminA)), http.StatusOK},
		"RS256 admin":                {rs.sign(t, userClaims(adminB)), http.StatusOK},
		"ES256 member":               {ec.sign(t, userClaims(memberA)), http.StatusForbidden},
		"HS256, no secret":           {userJWT(t, adminA), http.StatusUnauthorized},
		"ES256 service_role":         {ec.sign(t, with(userClaims(adminA), "role", "service_role")), http.StatusUnauthorized},
		"admin token, none was set":  {adminToken, http.StatusUnauthorized},
		"HS256 with the public key":  {hmacWith(t, `{"alg":"HS256","kid":"ec-1"}`, userClaims(adminA), ec.publicPEM()), http.StatusUnauthorized},
		"ES256 admin, unknown kid":   {newECSigner(t, "ec-7").sign(t, userClaims(adminA)), http.StatusUnauthorized},
		"ES256 admin, another's aud": {ec.sign(t, with(userClaims(adminA), "aud", "other")), http.StatusUnauthorized},
	} {
		status, body := e.call(t, "GET", "/api/events", tc.token, nil)
		assert.Equal(t, tc.want, status, "%s: %v", name, body)
	}
}

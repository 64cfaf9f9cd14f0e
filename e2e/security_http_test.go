package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jwtToken encodes header and claims and signs them with sign.
func jwtToken(t *testing.T, header string, claims map[string]any, sign func(unsigned []byte) []byte) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload)
	return unsigned + "." + enc.EncodeToString(sign([]byte(unsigned)))
}

// apiGet sends GET path to the relay at addr with a bearer token and extra
// headers (name, value, …).
func apiGet(t *testing.T, addr, path, token string, headers ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// TestSecurityMonitorWithJWKS runs the relay with EVENTBUS_JWKS_URL and no
// JWT secret or admin token, as a Supabase project with asymmetric signing
// keys would: an admin's ES256 token opens the API; Supabase's other roles,
// another audience and an HS256 token keyed with the public key do not; the
// answers carry the security headers; a database failure answers a request
// id, which the relay's log line carries with the error; headers past the
// size limit are refused.
func TestSecurityMonitorWithJWKS(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	point, err := key.PublicKey.Bytes()
	require.NoError(t, err)
	enc := base64.RawURLEncoding
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]any{{
			"kty": "EC", "crv": "P-256", "kid": "e2e-1", "alg": "ES256", "use": "sig",
			"x": enc.EncodeToString(point[1:33]), "y": enc.EncodeToString(point[33:]),
		}}})
	}))
	t.Cleanup(jwks.Close)
	es256 := func(claims map[string]any) string {
		return jwtToken(t, `{"alg":"ES256","typ":"JWT","kid":"e2e-1"}`, claims, func(unsigned []byte) []byte {
			sum := sha256.Sum256(unsigned)
			r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
			require.NoError(t, err)
			return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
		})
	}

	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_JWKS_URL="+jwks.URL+"/auth/v1/.well-known/jwks.json"))
	relay := e.startRelay()
	waitHTTP(t, 60*time.Second, addr, "/readyz", http.StatusOK)
	eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(relay.out.String(), "JWKS keys"), "the relay logs the keys it fetched at start"
	})
	const admin, org = "aaaaaaaa-1111-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000001"
	_, err = e.db.Exec(t.Context(), `INSERT INTO public.profiles (id, organization_id, role) VALUES ($1, $2, 'admin')`, admin, org)
	require.NoError(t, err)
	user := map[string]any{"sub": admin, "aud": "authenticated", "role": "authenticated", "exp": time.Now().Add(time.Hour).Unix()}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for k, v := range user {
			c[k] = v
		}
		c[k] = v
		return c
	}

	status, h, body := apiGet(t, addr, "/api/events", es256(user))
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
	assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", h.Get("Content-Security-Policy"))
	assert.NotEmpty(t, h.Get("X-Request-Id"))
	_, h, _ = apiGet(t, addr, "/crm/events", "")
	assert.Contains(t, h.Get("Content-Security-Policy"), "frame-ancestors 'none'", "the page")

	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for name, token := range map[string]string{
		"service_role":     es256(with("role", "service_role")),
		"anon":             es256(with("role", "anon")),
		"another audience": es256(with("aud", "another-project")),
		"expired":          es256(with("exp", time.Now().Add(-time.Minute).Unix())),
		"HS256 with the public key": jwtToken(t, `{"alg":"HS256","typ":"JWT","kid":"e2e-1"}`, user, func(unsigned []byte) []byte {
			mac := hmac.New(sha256.New, publicPEM)
			mac.Write(unsigned)
			return mac.Sum(nil)
		}),
	} {
		status, _, body := apiGet(t, addr, "/api/events", token)
		assert.Equal(t, http.StatusUnauthorized, status, "%s: %s", name, body)
	}

	status, _, _ = apiGet(t, addr, "/healthz", "", "X-Padding", strings.Repeat("x", 100<<10))
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, status, "100 KiB of headers")

	// A database failure: the caller gets an id, the log the error.
	_, err = e.db.Exec(t.Context(), `ALTER TABLE public.profiles RENAME TO profiles_away`)
	require.NoError(t, err)
	status, h, body = apiGet(t, addr, "/api/events", es256(user))
	_, err = e.db.Exec(t.Context(), `ALTER TABLE public.profiles_away RENAME TO profiles`)
	require.NoError(t, err)
	require.Equal(t, http.StatusInternalServerError, status, body)
	id := h.Get("X-Request-Id")
	require.NotEmpty(t, id)
	assert.JSONEq(t, fmt.Sprintf(`{"error": "internal error", "request_id": %q}`, id), body)
	var line string
	eventually(t, 10*time.Second, func() (bool, string) {
		for sc := bufio.NewScanner(strings.NewReader(relay.out.String())); sc.Scan(); {
			if strings.Contains(sc.Text(), id) {
				line = sc.Text()
			}
		}
		return line != "", "a log line with request id " + id
	})
	assert.Contains(t, line, "level=ERROR")
	assert.Contains(t, line, `public.profiles\" does not exist`, "the log line has the database's error")

	status, _, body = apiGet(t, addr, "/api/events", es256(user))
	assert.Equal(t, http.StatusOK, status, "and after: %s", body)
}

// TestSecurityJWTConfigurationErrors: a bad JWKS URL, audience or secret is
// one line naming the variable, exit code 2.
func TestSecurityJWTConfigurationErrors(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	for _, c := range []struct{ variable, value string }{
		{"EVENTBUS_JWKS_URL", "::not a url"},
		{"EVENTBUS_JWKS_URL", "http://project.supabase.co/auth/v1/.well-known/jwks.json"},
		{"EVENTBUS_JWT_AUDIENCE", ""},
		{"EVENTBUS_JWT_SECRET", "not-thirty-two-characters"},
	} {
		r := runCLI(t, bin, append(unreachableEnviron(), c.variable+"="+c.value), "run")
		assert.Equal(t, 2, r.code, "%s=%q: %s", c.variable, c.value, r)
		requireOneLine(t, r.stderr, c.variable)
	}
}

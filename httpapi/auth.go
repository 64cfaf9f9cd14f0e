package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireToken serves h only to requests that carry "Authorization: Bearer
// <token>"; others get 401 with a WWW-Authenticate challenge and nothing of
// h. The comparison takes the same time whatever the token sent: both sides
// are hashed to 32 bytes first, so neither the content nor the length of the
// expected token leaks through timing.
//
// With no token configured (empty token) the endpoints behind it are
// disabled: every request gets 403 and a line saying so. 403 rather than 404,
// so that an operator who tries /debug/pprof/ learns why it does not answer.
func RequireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "admin endpoints are disabled: set EVENTBUS_ADMIN_TOKEN", http.StatusForbidden)
		})
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r)
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="eventbus"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

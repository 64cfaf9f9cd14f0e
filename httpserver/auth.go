package httpserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireToken serves h only to requests that carry "Authorization: Bearer
// <token>"; others get 401 with a WWW-Authenticate challenge and nothing of
// h. The comparison takes the same time whatever the token sent (see
// TokenMatcher).
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
	matches := TokenMatcher(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := Bearer(r)
		if !matches(got) || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="eventbus"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// TokenMatcher returns a func that reports whether got equals token, taking
// the same time whatever got is: both sides are hashed to 32 bytes first, so
// neither the content nor the length of the expected token leaks through
// timing. An empty token matches nothing.
func TokenMatcher(token string) func(got string) bool {
	want := sha256.Sum256([]byte(token))
	return func(got string) bool {
		sum := sha256.Sum256([]byte(got))
		return subtle.ConstantTimeCompare(sum[:], want[:]) == 1 && token != ""
	}
}

// Bearer returns the token of an "Authorization: Bearer <token>" header.
func Bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

package monitor

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(Options{AdminToken: adminToken}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	head := func(path string) (int, http.Header) {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	common := func(h http.Header, path string) {
		t.Helper()
		assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), path)
		assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"), path)
		assert.Equal(t, "DENY", h.Get("X-Frame-Options"), path)
		assert.Contains(t, h.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
	}

	for _, path := range []string{"/", "/crm/events", "/crm/events/", "/crm/events/app.js", "/crm/events/style.css", "/crm/events/missing.js"} {
		status, h := head(path)
		require.Contains(t, []int{http.StatusOK, http.StatusFound, http.StatusNotFound}, status, path)
		common(h, path)
		csp := h.Get("Content-Security-Policy")
		assert.Contains(t, csp, "default-src 'self'", path)
		assert.Contains(t, csp, "script-src 'self'", path)
		assert.Contains(t, csp, "object-src 'none'", path)
		assert.Contains(t, csp, "base-uri 'none'", path)
		assert.NotContains(t, csp, "unsafe", path)
	}
	// JSON answers: nothing in them is to be run, framed or sniffed.
	for _, path := range []string{"/api/events", "/api/nothing"} {
		status, h := head(path)
		require.Equal(t, http.StatusUnauthorized, status, path)
		common(h, path)
		assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", h.Get("Content-Security-Policy"), path)
	}
}

// The page's CSP allows no inline script or style: the page must have none.
func TestPageNeedsNoInlineScriptOrStyle(t *testing.T) {
	t.Parallel()
	entries, err := web.ReadDir("web")
	require.NoError(t, err)
	inline := map[string]*regexp.Regexp{
		"inline <script>":         regexp.MustCompile(`(?i)<script(\s+[^>]*)?>\s*[^<\s]`),
		"<script> without src":    regexp.MustCompile(`(?i)<script(?:\s+(?:type|defer|async|nomodule)(?:="[^"]*")?)*\s*>`),
		"<style> element":         regexp.MustCompile(`(?i)<style[\s>]`),
		"style attribute":         regexp.MustCompile(`(?i)\sstyle\s*=`),
		"event handler attribute": regexp.MustCompile(`(?i)\son[a-z]+\s*=\s*["']`),
		"javascript: URL":         regexp.MustCompile(`(?i)javascript:`),
		"setAttribute(\"style\")": regexp.MustCompile(`setAttribute\(\s*["']style`),
		"innerHTML":               regexp.MustCompile(`\.(inner|outer)HTML\s*=`),
		"eval or new Function":    regexp.MustCompile(`\beval\(|new Function\(`),
		"a resource elsewhere":    regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`),
	}
	for _, entry := range entries {
		f, err := web.Open("web/" + entry.Name())
		require.NoError(t, err)
		b, err := io.ReadAll(f)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		for what, re := range inline {
			assert.NotRegexp(t, re, string(b), "%s in %s", what, entry.Name())
		}
	}
}

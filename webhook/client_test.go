package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForbiddenIP(t *testing.T) {
	forbidden := []string{
		"0.0.0.0", "0.1.2.3", "::",
		"127.0.0.1", "127.255.255.254", "::1",
		"10.0.0.1", "10.255.255.255",
		"172.16.0.1", "172.31.255.255",
		"192.168.0.1", "192.168.255.255",
		"fc00::1", "fd12:3456::1",
		"169.254.0.1", "169.254.169.254",
		"fe80::1", "fe80::1%eth0", "febf::1",
		"100.64.0.1", "100.127.255.255", "100.100.100.200",
		"224.0.0.1", "239.255.255.255", "ff02::1",
		"255.255.255.255",
		"fd00:ec2::254",
		"192.0.0.1", "192.0.0.255",
		"198.18.0.1", "198.19.255.255",
		"240.0.0.1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
		"::ffff:192.168.1.1", "::ffff:0.0.0.0",
		"64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe",
	}
	allowed := []string{
		"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
		"172.32.0.1", "100.128.0.1", "192.0.1.1", "198.20.0.1",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2001:db8::1",
	}
	for _, s := range forbidden {
		assert.True(t, ForbiddenIP(netip.MustParseAddr(s)), "%s should be forbidden", s)
	}
	for _, s := range allowed {
		assert.False(t, ForbiddenIP(netip.MustParseAddr(s)), "%s should be allowed", s)
	}
	assert.True(t, ForbiddenIP(netip.Addr{}), "zero Addr must fail closed")
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url          string
		allowPrivate bool
		wantErr      string // substring; "" means success
		forbidden    bool   // error must wrap ErrForbiddenTarget
	}{
		{url: "https://example.com/hook"},
		{url: "http://example.com:8080/hook?x=1"},
		{url: "HTTPS://Example.com/hook"},
		{url: "ftp://example.com/hook", wantErr: `scheme "ftp"`},
		{url: "example.com/hook", wantErr: "missing scheme"},
		{url: "http:///hook", wantErr: "missing host"},
		{url: "http://user:pw@example.com", wantErr: "credentials"},
		{url: "http://user@example.com", wantErr: "credentials"},
		{url: "http://user:pw@127.0.0.1", allowPrivate: true, wantErr: "credentials"},
		{url: "http://127.0.0.1/", wantErr: "127.0.0.1", forbidden: true},
		{url: "http://127.0.0.1/", allowPrivate: true},
		{url: "http://[::1]/", wantErr: "::1", forbidden: true},
		{url: "http://[::ffff:127.0.0.1]/", wantErr: "loopback", forbidden: true},
		{url: "http://[fe80::1%25eth0]/", wantErr: "link-local", forbidden: true},
		{url: "http://169.254.169.254/latest/meta-data/", wantErr: "metadata", forbidden: true},
		{url: "http://10.1.2.3:9000/", wantErr: "private", forbidden: true},
		{url: "http://localhost:8080/", wantErr: "localhost", forbidden: true},
		{url: "http://LOCALHOST./", wantErr: "localhost", forbidden: true},
		{url: "http://api.localhost/", wantErr: "localhost", forbidden: true},
		{url: "http://localhost:8080/", allowPrivate: true},
		{url: "http://8.8.8.8/hook"},
		{url: "http://[2606:4700:4700::1111]/hook"},
		{url: "http://exa mple.com/", wantErr: "invalid webhook URL"},
	}
	for _, tt := range tests {
		err := CheckURL(tt.url, tt.allowPrivate)
		if tt.wantErr == "" {
			assert.NoError(t, err, "%s allowPrivate=%v", tt.url, tt.allowPrivate)
			continue
		}
		if !assert.Error(t, err, "%s allowPrivate=%v", tt.url, tt.allowPrivate) {
			continue
		}
		assert.Contains(t, err.Error(), tt.wantErr, tt.url)
		assert.NotContains(t, err.Error(), "\n", "errors must be one line")
		assert.Equal(t, tt.forbidden, errors.Is(err, ErrForbiddenTarget), "%s: %v", tt.url, err)
	}
}

func TestCheckURLDoesNotLeakCredentials(t *testing.T) {
	// A parse failure must not echo the password back into logs or columns.
	err := CheckURL("http://user:s3cret@exa mple.com/", false)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

// newCountingServer starts a 127.0.0.1 server and counts requests it sees.
func newCountingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newTestClient(t *testing.T, o ClientOptions) *http.Client {
	t.Helper()
	c := NewClient(o)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func post(t *testing.T, c *http.Client, url string) (*http.Response, error) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(`{"ok":true}`))
	if err == nil {
		t.Cleanup(func() { _ = resp.Body.Close() })
	}
	return resp, err
}

func TestClientRefusesLoopback(t *testing.T) {
	srv, hits := newCountingServer(t, nil)
	c := newTestClient(t, ClientOptions{Timeout: 2 * time.Second})

	_, err := post(t, c, srv.URL)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrForbiddenTarget)
	assert.Contains(t, err.Error(), "127.0.0.1")
	assert.Zero(t, hits.Load(), "server must not see the request")
}

func TestClientRefusesLocalhostNameAtConnectTime(t *testing.T) {
	// The name is not a literal IP: only the dial-time check can catch it,
	// which is the same path a rebinding DNS answer takes.
	srv, hits := newCountingServer(t, nil)
	c := newTestClient(t, ClientOptions{Timeout: 2 * time.Second})

	u := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	_, err := post(t, c, u)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrForbiddenTarget)
	assert.Zero(t, hits.Load())
}

func TestClientAllowPrivate(t *testing.T) {
	var gotUA atomic.Value
	srv, hits := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotUA.Store(r.UserAgent())
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	c := newTestClient(t, ClientOptions{Timeout: 2 * time.Second, AllowPrivate: true, UserAgent: "eventbus-webhook/test"})

	resp, err := post(t, c, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.EqualValues(t, 1, hits.Load())
	assert.Equal(t, "eventbus-webhook/test", gotUA.Load())
}

func TestClientTransportIgnoresEnvProxy(t *testing.T) {
	c := NewClient(ClientOptions{})
	t.Cleanup(c.CloseIdleConnections)
	tr, ok := c.Transport.(*http.Transport)
	require.True(t, ok, "without UserAgent the transport is a bare *http.Transport")
	assert.Nil(t, tr.Proxy)
	assert.Equal(t, 4, tr.MaxIdleConnsPerHost)
	assert.Equal(t, DefaultTimeout, c.Timeout)
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	var targetHits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/internal", http.StatusFound)
	})
	mux.HandleFunc("/internal", func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := newTestClient(t, ClientOptions{Timeout: 2 * time.Second, AllowPrivate: true})

	resp, err := post(t, c, srv.URL+"/hook")
	require.NoError(t, err)
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "/internal", resp.Header.Get("Location"))
	assert.Zero(t, targetHits.Load(), "redirect target must never be requested")
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, _ := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	// Registered after the server, so it runs first and unblocks the handler
	// before srv.Close waits for it.
	t.Cleanup(func() { close(release) })
	c := newTestClient(t, ClientOptions{Timeout: 200 * time.Millisecond, AllowPrivate: true})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err == nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "the client timeout, not the safety net, must end the request")
	var ne interface{ Timeout() bool }
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "want a timeout error, got %v", err)
}

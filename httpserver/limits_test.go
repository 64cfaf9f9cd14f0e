package httpserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dial opens a TCP connection to the listener of base (http://host:port).
func dial(t *testing.T, base string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// roundTrip sends GET path on conn (keep-alive) and reads the response
// within timeout.
func roundTrip(conn net.Conn, br *bufio.Reader, path string, timeout time.Duration) (*http.Response, error) {
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: relay\r\n\r\n", path); err != nil {
		return nil, err
	}
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp, errors.Join(err, resp.Body.Close())
}

func TestIdleKeepAliveConnectionIsClosed(t *testing.T) {
	lim := defaultLimits
	lim.idle = 300 * time.Millisecond
	base := serve(t, Config{Addr: "127.0.0.1:0", limits: &lim})[0]
	conn := dial(t, base)
	br := bufio.NewReader(conn)
	resp, err := roundTrip(conn, br, "/healthz", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, resp.Close, "the connection is kept alive")

	idleSince := time.Now()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the server closes the idle connection (not: the client's 5 s deadline)")
	assert.GreaterOrEqual(t, time.Since(idleSince), lim.idle/2, "not before the idle timeout")
}

func TestSlowBodyIsCutOff(t *testing.T) {
	lim := defaultLimits
	lim.read = 500 * time.Millisecond
	read := make(chan error, 1)
	mon := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		read <- err
	})
	base := serve(t, Config{Addr: "127.0.0.1:0", Monitor: mon, limits: &lim})[0]
	conn := dial(t, base)
	const size = 30 // bytes, one every 100 ms: 3 s for the whole body
	_, err := fmt.Fprintf(conn, "POST /api/events HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\n\r\n", size)
	require.NoError(t, err)

	started := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case err := <-read:
			require.Error(t, err, "the handler read the whole trickled body (%d bytes over %s)", sent, time.Since(started))
			assert.Less(t, sent, size, "cut off before the body was complete")
			assert.Less(t, time.Since(started), 2*time.Second, "cut off about the read timeout after the request began")
			return
		case <-tick.C:
			if sent < size {
				if _, err := conn.Write([]byte("x")); err == nil {
					sent++
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the handler never finished reading the body")
		}
	}
}

func TestConnectionsPastTheCapWait(t *testing.T) {
	lim := defaultLimits
	lim.maxConns = 2
	base := serve(t, Config{Addr: "127.0.0.1:0", limits: &lim})[0]

	// Two keep-alive connections hold both places.
	held := make([]net.Conn, 2)
	for i := range held {
		held[i] = dial(t, base)
		resp, err := roundTrip(held[i], bufio.NewReader(held[i]), "/healthz", 5*time.Second)
		require.NoError(t, err, "connection %d", i+1)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}

	third := dial(t, base) // the kernel accepts it; the server does not take it yet
	br := bufio.NewReader(third)
	_, err := roundTrip(third, br, "/healthz", 500*time.Millisecond)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "a third connection is not served while two are held")

	require.NoError(t, held[0].Close())
	require.NoError(t, third.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err, "served once a place is free")
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	base := serve(t, Config{Addr: "127.0.0.1:0"})[0]
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/healthz", nil)
	require.NoError(t, err)
	req.Header.Set("X-Padding", strings.Repeat("x", 200<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	code, _ := get(t, base+"/healthz", "Bearer "+strings.Repeat("j", 8<<10))
	assert.Equal(t, http.StatusOK, code, "a large JWT and some cookies fit")
}

func TestSlowResponseIsCutOffButProfilesMayRunLonger(t *testing.T) {
	lim := defaultLimits
	lim.write = time.Second
	mon := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a handler stuck for longer than the write timeout
		case <-time.After(1500 * time.Millisecond):
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("late"))
	})
	base := serve(t, Config{Addr: "127.0.0.1:0", AdminToken: token, Monitor: mon, limits: &lim})[0]

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "a response written after the write timeout never arrives")

	// pprof extends its own deadline by ?seconds= (net/http/pprof does).
	code, body := get(t, base+"/debug/pprof/profile?seconds=2", "Bearer "+token)
	assert.Equal(t, http.StatusOK, code, body)
	assert.NotEmpty(t, body, "a CPU profile")
}

// net/http half-closes a connection before it hangs up on a refused request
// (431, 413), when the connection can: the cap's wrapper must let it.
func TestCappedConnectionsHalfClose(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := newCapListener(inner, 1)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	conn, err := ln.Accept()
	require.NoError(t, err)
	defer conn.Close()

	cw, ok := conn.(interface{ CloseWrite() error })
	require.True(t, ok, "the accepted connection has CloseWrite")
	_, err = conn.Write([]byte("431"))
	require.NoError(t, err)
	require.NoError(t, cw.CloseWrite())
	require.NoError(t, client.SetReadDeadline(time.Now().Add(5*time.Second)))
	got, err := io.ReadAll(client)
	require.NoError(t, err, "the client reads the answer, then EOF")
	assert.Equal(t, "431", string(got))
}

package httpserver

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// limits bound what one client can hold of a listener: time to send the
// headers and the whole request, time to take the response, time a
// keep-alive connection may sit idle, header bytes, and connections at once.
// The README's HTTP section states them.
type limits struct {
	readHeader     time.Duration
	read           time.Duration
	write          time.Duration
	idle           time.Duration
	maxHeaderBytes int
	maxConns       int
}

// defaultLimits are the limits of every listener.
//
// read: the longest request is a 1 MiB POST to the monitor (its body limit);
// 30 s is 35 KB/s. write: from the end of the headers to the last byte of the
// response; the monitor gives its queries 15 s (requestTimeout), so 30 s
// leaves as long again to send a page of 500 events to a slow client. pprof's
// CPU profile and trace run for ?seconds= and extend their own deadline by
// that much (net/http/pprof does, from the server's WriteTimeout). idle: a
// keep-alive connection outlives a Prometheus scrape interval of 1 minute.
// Headers: a Supabase JWT is 1-2 KB; 64 KiB leaves room for cookies that a
// browser sends to the host. Connections: 256 at once per listener bounds
// the memory a flood of connections holds (each at most the header limit
// until its headers are in); the ones past it wait in the kernel's accept
// queue, at most the timeouts above each.
var defaultLimits = limits{
	readHeader:     5 * time.Second,
	read:           30 * time.Second,
	write:          30 * time.Second,
	idle:           90 * time.Second,
	maxHeaderBytes: 64 << 10,
	maxConns:       256,
}

// server returns an http.Server serving h within l.
func (l limits) server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.readHeader,
		ReadTimeout:       l.read,
		WriteTimeout:      l.write,
		IdleTimeout:       l.idle,
		MaxHeaderBytes:    l.maxHeaderBytes,
	}
}

// capListener serves at most cap(places) connections at once: Accept takes a
// place before it takes a connection, and a connection gives its place back
// when closed. The connections past the cap wait in the kernel's accept queue
// (and are refused once that is full), as with x/net/netutil.LimitListener,
// whose few lines these are rather than a new dependency.
type capListener struct {
	net.Listener
	places    chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func newCapListener(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		return ln
	}
	return &capListener{Listener: ln, places: make(chan struct{}, n), closed: make(chan struct{})}
}

func (l *capListener) Accept() (net.Conn, error) {
	select {
	case l.places <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.places
		return nil, err
	}
	return &placeConn{Conn: c, release: sync.OnceFunc(func() { <-l.places })}, nil
}

// Close also wakes an Accept waiting for a place.
func (l *capListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// placeConn gives its place back on the first Close.
type placeConn struct {
	net.Conn
	release func()
}

func (c *placeConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite half-closes the TCP connection, as net/http does before it hangs
// up on a request it refused (431, 413), so that the client reads the answer
// rather than a reset.
func (c *placeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

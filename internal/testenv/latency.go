package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// LatencyProxy is a TCP proxy on loopback that delays every byte the server
// sends to the client by a fixed time, like a slow link or an overloaded
// broker whose acks come late. Bytes from the client pass at once. Tests
// point a client at Addr instead of the server.
type LatencyProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	delay time.Duration
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartLatencyProxy forwards a new loopback port to target, delaying what
// target sends by delay. It stops when the test ends.
func StartLatencyProxy(t testing.TB, target string, delay time.Duration) *LatencyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: latency proxy: %v", err)
	}
	p := &LatencyProxy{ln: ln, target: target, delay: delay, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *LatencyProxy) Addr() string { return p.ln.Addr().String() }

// SetDelay changes the delay of bytes read from now on.
func (p *LatencyProxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

func (p *LatencyProxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines.
func (p *LatencyProxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *LatencyProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *LatencyProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.track(client)
		p.track(server)
		closeBoth := func() {
			_ = client.Close()
			_ = server.Close()
			p.mu.Lock()
			delete(p.conns, client)
			delete(p.conns, server)
			p.mu.Unlock()
		}
		p.wg.Go(func() {
			_, _ = io.Copy(server, client)
			closeBoth()
		})
		p.wg.Go(func() {
			p.delayed(client, server)
			closeBoth()
		})
	}
}

// chunk is bytes read from the server with the time they may be sent on.
type chunk struct {
	due  time.Time
	data []byte
}

// delayed copies from server to client, each chunk held until its due time.
// A reader and a writer goroutine keep the delay a latency, not a throughput
// cap: bytes keep being read while earlier ones wait.
func (p *LatencyProxy) delayed(client, server net.Conn) {
	queue := make(chan chunk, 1024)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(queue)
		for {
			buf := make([]byte, 32*1024)
			n, err := server.Read(buf)
			if n > 0 {
				queue <- chunk{due: time.Now().Add(p.currentDelay()), data: buf[:n]}
			}
			if err != nil {
				return
			}
		}
	})
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := client.Write(c.data); err != nil {
			_ = server.Close()
			break
		}
	}
	for range queue { // drain after a failed write so the reader can end
	}
	wg.Wait()
}

package natsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures Start.
type Options struct {
	// StoreDir is where JetStream keeps streams; required, and kept across
	// Restart.
	StoreDir string
	// Port is the client port on 127.0.0.1; 0 picks a free one.
	Port int
	// MaxPayload is the largest message the server accepts; 0 means the
	// server's default (1 MiB).
	MaxPayload int32
	// SyncAlways makes JetStream fsync every write before acknowledging it
	// (the server's `jetstream { sync_interval: always }`). By default it
	// acknowledges at once and fsyncs every two minutes: a process crash
	// loses nothing, a power loss or kernel crash can lose acknowledged
	// writes.
	SyncAlways bool
	// Binary, when set, is a nats-server executable (a path, or a name
	// looked up in PATH) to run as a child process instead of the server
	// go.mod embeds, for testing against other server versions. Its config
	// file and log are written next to StoreDir (STOREDIR.nats-server.conf,
	// .log), and it gets a monitoring port on 127.0.0.1 as well. SyncAlways
	// needs nats-server 2.10 or newer (older ones refuse sync_interval).
	Binary string
	// Log receives a line per state change; nil discards. The server's own
	// log is not forwarded (a Binary's is in its log file).
	Log *slog.Logger
}

// Server is a NATS server with JetStream running inside this process, or as
// a child process with Options.Binary. Its methods are safe for concurrent
// use.
type Server struct {
	opts server.Options // as first started, with the port actually bound
	log  *slog.Logger

	// With Options.Binary: the executable, its config file and log, and
	// the monitoring port this package reads the server's state from.
	binary, confPath, logPath string
	httpPort                  int

	mu   sync.Mutex
	srv  *server.Server // embedded: nil while shut down
	proc *process       // binary: nil while shut down
}

// Start starts an embedded NATS server with JetStream and returns once it
// accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("nats: StoreDir is required")
	}
	return startServer(opts.serverOptions(), opts.Binary, opts.Log)
}

// serverOptions are the embedded server's options for o.
func (o Options) serverOptions() server.Options {
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return server.Options{
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		MaxPayload: o.MaxPayload,
		SyncAlways: o.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
	}
}

// startServer starts a server with opts, embedded or (binary set) as a child
// process, and records the client port it bound, so that Restart comes back
// where clients expect it.
func startServer(opts server.Options, binary string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Server{opts: opts, log: log, binary: binary}
	if binary != "" {
		if err := startBinary(n); err != nil {
			return nil, err
		}
		n.log.Info("nats started", "port", n.opts.Port, "store_dir", n.opts.StoreDir, "sync_always", n.opts.SyncAlways,
			"binary", n.binary, "monitor_port", n.httpPort)
		return n, nil
	}
	if err := n.start(); err != nil {
		return nil, err
	}
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	n.log.Info("nats started", "port", n.opts.Port, "store_dir", n.opts.StoreDir, "sync_always", n.opts.SyncAlways)
	return n, nil
}

// URL returns the client URL, nats://127.0.0.1:PORT.
func (n *Server) URL() string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.opts.Port))
}

// Port returns the client port.
func (n *Server) Port() int { return n.opts.Port }

// Name returns the server's name: set for a node of StartCluster (the
// name JetStream reports for stream leaders and replicas), empty otherwise.
func (n *Server) Name() string { return n.opts.ServerName }

// running returns the embedded server, nil while it is shut down and always
// in binary mode: callers read a child server's state with the binary*
// methods instead.
func (n *Server) running() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Shutdown stops the server, disconnecting every client, and waits until it
// has stopped. Calling it when the server is down is harmless. A child
// server gets SIGTERM, and SIGKILL when it is still running 10 s later.
func (n *Server) Shutdown() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		if n.proc.stop() {
			n.log.Warn("nats killed: not stopped within the deadline after SIGTERM", "port", n.opts.Port, "timeout", binaryStopTimeout)
		}
		n.proc = nil
		n.log.Info("nats shut down", "port", n.opts.Port)
		return
	}
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
	n.log.Info("nats shut down", "port", n.opts.Port)
}

// Restart starts the server again on the same port and store directory, as
// when an outage ends; streams and their messages are still there. A running
// server is shut down first.
func (n *Server) Restart() error {
	n.Shutdown()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.start(); err != nil {
		return err
	}
	n.log.Info("nats restarted", "port", n.opts.Port)
	return nil
}

// start runs the server with n.opts; the caller holds n.mu or owns n alone.
func (n *Server) start() error {
	if n.binary != "" {
		return n.startProcess()
	}
	opts := n.opts // the server keeps and modifies its options
	srv, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("nats: not ready for connections on %s:%d within 10s (port taken?)", n.opts.Host, n.opts.Port)
	}
	n.srv = srv
	return nil
}

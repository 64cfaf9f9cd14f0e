package natsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// StoreDir holds one JetStream store directory per node (StoreDir/NAME-1,
	// NAME-2, …); required, and kept across a node's Restart.
	StoreDir string
	// Name is the cluster's name and the prefix of its nodes' server names;
	// empty means "eventbus".
	Name string
	// SyncAlways is Options.SyncAlways for every node.
	SyncAlways bool
	// Binary is Options.Binary for every node.
	Binary string
	// Log receives a line per state change, with the node's name; nil
	// discards.
	Log *slog.Logger
}

// clusterReadyTimeout bounds how long StartCluster waits for the
// JetStream meta group to form.
const clusterReadyTimeout = 60 * time.Second

// Cluster is a JetStream cluster of embedded NATS servers on 127.0.0.1,
// each routed to all the others, each with its own store directory. Each
// node is a *Server: shut one down and restart it (same client port, cluster
// port and store directory) to simulate a node's crash.
type Cluster struct {
	nodes []*Server
}

// StartCluster starts size servers clustered with each other and returns
// once JetStream's meta group has a leader that counts every node as a peer.
// Client ports are picked by the servers; cluster ports are picked free
// before the start, since every node's routes must name them all.
func StartCluster(size int, opts ClusterOptions) (*Cluster, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("nats cluster: StoreDir is required")
	}
	if size < 2 {
		return nil, fmt.Errorf("nats cluster: size %d: a cluster needs at least 2 servers", size)
	}
	if opts.Name == "" {
		opts.Name = "eventbus"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ports, err := freePorts(size)
	if err != nil {
		return nil, fmt.Errorf("nats cluster: %w", err)
	}
	c := &Cluster{}
	for i := range size {
		name := opts.Name + "-" + strconv.Itoa(i+1)
		so := Options{StoreDir: filepath.Join(opts.StoreDir, name), SyncAlways: opts.SyncAlways}.serverOptions()
		so.ServerName = name
		so.Cluster = server.ClusterOpts{Name: opts.Name, Host: "127.0.0.1", Port: ports[i]}
		// Every node routes to every node, itself included (the server
		// ignores a route to itself): the meta group then expects size
		// peers from the start.
		for _, port := range ports {
			so.Routes = append(so.Routes, &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
		}
		n, err := startServer(so, opts.Binary, opts.Log.With("node", name))
		if err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("nats cluster: node %s: %w", name, err)
		}
		c.nodes = append(c.nodes, n)
	}
	if err := c.waitFormed(opts.Binary != "", opts.Log); err != nil {
		c.Shutdown()
		return nil, err
	}
	opts.Log.Info("nats cluster ready", "cluster", opts.Name, "urls", c.URL())
	return c, nil
}

// waitFormed waits for the new cluster's meta group. A nats-server 2.10
// binary sometimes forms it without one node, which its leader then never
// counts as online although that node runs and is healthy (seen in about 1
// of 10 cluster starts of the test matrix under load, never on 2.11 or newer
// nor embedded): restarting the missing nodes, once, lets them join.
func (c *Cluster) waitFormed(binary bool, log *slog.Logger) error {
	if !binary {
		return c.WaitReady(clusterReadyTimeout)
	}
	const firstTry = 20 * time.Second
	err := c.WaitReady(firstTry)
	if err == nil {
		return nil
	}
	missing := c.missingPeers()
	if len(missing) == 0 {
		return c.WaitReady(clusterReadyTimeout - firstTry)
	}
	for _, n := range missing {
		log.Warn("nats cluster: restarting a node the meta leader does not count", "node", n.Name(), "state", err.Error())
		if err := n.Restart(); err != nil {
			return fmt.Errorf("nats cluster: restart node %s: %w", n.Name(), err)
		}
	}
	return c.WaitReady(clusterReadyTimeout - firstTry)
}

// missingPeers returns the running nodes the meta leader does not count as
// online peers; nil without a leader.
func (c *Cluster) missingPeers() []*Server {
	var online []string
	found := false
	for _, n := range c.nodes {
		if v, err := n.metaView(); err == nil && v.leader {
			online, found = v.peers, true
		}
	}
	if !found {
		return nil
	}
	var missing []*Server
	for _, n := range c.nodes {
		if !slices.Contains(online, n.Name()) {
			missing = append(missing, n)
		}
	}
	return missing
}

// Nodes returns the cluster's servers, in the order of their names.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// URL returns every node's client URL, comma-separated, as nats.Connect
// and EVENTBUS_NATS_URL accept them.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Shutdown shuts every node down; nodes already down are skipped.
func (c *Cluster) Shutdown() {
	for _, n := range c.nodes {
		n.Shutdown()
	}
}

// StreamLeader returns the node leading the JetStream stream named stream
// (in the default account, as on a server without accounts), or nil while
// no node does: before the stream exists, during an election.
func (c *Cluster) StreamLeader(stream string) *Server {
	for _, n := range c.nodes {
		if n.leadsStream(stream) {
			return n
		}
	}
	return nil
}

// leadsStream reports whether n leads stream, as n itself sees it.
func (n *Server) leadsStream(stream string) bool {
	if n.binary != "" {
		return n.binaryLeadsStream(stream)
	}
	srv := n.running()
	return srv != nil && srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
}

// WaitReady waits until the JetStream meta group has a leader that counts
// every node as an online peer and every running node is current with it,
// as after a node's Restart. Nodes that are shut down are waited for too:
// restart them first.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		state := c.metaState()
		if state == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats cluster: not ready after %s: %s", timeout, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// metaState describes what keeps the meta group from being ready; empty
// when it is.
func (c *Cluster) metaState() string {
	var leader *Server
	var peers, offline []string
	for _, n := range c.nodes {
		v, err := n.metaView()
		switch {
		case err != nil:
			return "node " + n.Name() + ": " + err.Error()
		case v.down:
			return "node " + n.Name() + " is shut down"
		case !v.current:
			return "node " + n.Name() + " is not current with the meta leader"
		case v.leader:
			leader, peers, offline = n, v.peers, v.offline
		}
	}
	if leader == nil {
		return "no meta leader"
	}
	if len(peers) != len(c.nodes) {
		state := fmt.Sprintf("meta leader %s sees %d online peers %v, want %d", leader.Name(), len(peers), peers, len(c.nodes))
		if len(offline) > 0 {
			state += fmt.Sprintf("; offline to it: %v", offline)
		}
		return state
	}
	return ""
}

// metaView is one node's part in the JetStream meta group.
type metaView struct {
	down    bool
	current bool     // with the meta leader
	leader  bool     // is the meta leader
	peers   []string // online peers, as the leader counts them
	offline []string // the other peers, as the leader's /jsz lists them (binary only)
}

func (n *Server) metaView() (metaView, error) {
	if n.binary != "" {
		n.mu.Lock()
		down := n.proc == nil || n.proc.exited()
		n.mu.Unlock()
		if down {
			return metaView{down: true}, nil
		}
		return n.binaryMetaView()
	}
	srv := n.running()
	if srv == nil {
		return metaView{down: true}, nil
	}
	v := metaView{current: srv.JetStreamIsCurrent(), leader: srv.JetStreamIsLeader()}
	if v.leader {
		v.peers = srv.JetStreamClusterPeers()
	}
	return v, nil
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		// Held open until all are picked, so the ports are distinct.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

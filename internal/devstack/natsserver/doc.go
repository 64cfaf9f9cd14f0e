// Package natsserver starts the NATS server eventbus publishes to — one
// server with JetStream, or a JetStream cluster of them — on the local
// machine, for tests and for the local dev run command (cmd/eventbus-dev).
// It is the one way those servers are brought up, so tests and a
// developer's shell see the same configuration.
//
// # One server
//
// Start embeds github.com/nats-io/nats-server/v2 in the calling process,
// with JetStream storing to a given directory. Shutdown and Restart simulate
// an outage: the server comes back on the same port with the same streams.
// Options.SyncAlways is the server's `sync_interval: always` (fsync before
// every PubAck), which the dev environment (cmd/eventbus-dev) runs with;
// tests keep JetStream's default (fsync every two minutes), since a server
// inside the test process cannot lose its page cache and the tests would
// only run slower (see testenv.NATS).
//
// # A cluster
//
// StartCluster runs several such servers in the process as one JetStream
// cluster, routed to each other over 127.0.0.1 (cluster ports picked free
// before the start, since every node's routes name them all), each with a
// store directory of its own. Each node is a *Server: Shutdown and Restart
// of one node simulate its crash and return, on the same ports and store.
// WaitReady says when the cluster has its meta leader and every node again,
// StreamLeader which node leads a stream, read from the servers themselves.
//
// # A nats-server binary
//
// With Options.Binary (ClusterOptions.Binary) the same servers run as child
// processes of a given nats-server executable instead, to test against
// server versions other than go.mod's: natsserver writes each a config file
// equivalent to the embedded options, next to its store directory, and
// gives it a monitoring port on 127.0.0.1, from which it reads readiness
// (/healthz), stream leaders and the meta group (/jsz). Shutdown sends
// SIGTERM (SIGKILL after 10 s); Restart starts the binary again on the same
// ports and store. When such a start fails, the error carries the tail of
// the server's log (package serverlog).
package natsserver

// Package devstack starts the services eventbus talks to — a PostgreSQL
// cluster with logical replication enabled and a NATS server with JetStream —
// on the local machine, for tests and for the local dev run command. It is the
// one way those services are brought up, so tests and a developer's shell see
// the same configuration.
//
// # PostgreSQL
//
// StartPostgres runs the machine's PostgreSQL server binaries (found with
// `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin). It creates
// a cluster with initdb when the data directory holds none and reuses it when
// it does, so a dev environment keeps its data between runs. The server
// listens on 127.0.0.1 only, on a free port unless one is given, with
// wal_level=logical and room for many replication slots. Settings devstack
// owns live in devstack.conf inside the data directory, included from
// postgresql.conf and rewritten before every start.
//
// PostgreSQL refuses to run as root. When the process is root, devstack hands
// the data directory to the `postgres` OS user and runs initdb and pg_ctl as
// that user; every ancestor of the data directory must then be searchable by
// it (os.MkdirTemp creates 0700 directories: chmod them 0755).
//
// The server's output goes to a log file next to the data directory
// (DATADIR.log); when a start fails, the error carries the tail of that log.
//
// PostgresOptions.Settings adds postgresql.conf lines to devstack.conf. Kill
// stops a server as a crash of its host would (SIGKILL to all its processes
// at once); Promote ends a standby's recovery.
//
// StartStandby makes a hot standby of a running cluster for failover tests:
// a physical slot on the primary, a base backup taken with the low-level
// backup API (pg_backup_start, a copy of the data directory without WAL and
// transient files, pg_backup_stop's backup_label; the npm server packages
// have no pg_basebackup), then standby.signal, primary_conninfo,
// primary_slot_name, hot_standby_feedback and sync_replication_slots. The
// primary gets the physical slot in synchronized_standby_slots (in its
// devstack.conf, reloaded: not ALTER SYSTEM, whose file the next standby
// would copy). Slot synchronization needs PostgreSQL 17.
//
// # NATS
//
// StartNATS embeds github.com/nats-io/nats-server/v2 in the calling process,
// with JetStream storing to a given directory. Shutdown and Restart simulate
// an outage: the server comes back on the same port with the same streams.
// NATSOptions.SyncAlways is the server's `sync_interval: always` (fsync
// before every PubAck), which the dev environment (cmd/eventbus-dev) runs
// with; tests keep JetStream's default (fsync every two minutes), since a
// server inside the test process cannot lose its page cache and the tests
// would only run slower (see testenv.NATS).
//
// StartNATSCluster runs several such servers in the process as one JetStream
// cluster, routed to each other over 127.0.0.1 (cluster ports picked free
// before the start, since every node's routes name them all), each with a
// store directory of its own. Each node is a *NATS: Shutdown and Restart of
// one node simulate its crash and return, on the same ports and store.
// WaitReady says when the cluster has its meta leader and every node again,
// StreamLeader which node leads a stream, read from the servers themselves.
//
// With NATSOptions.Binary (NATSClusterOptions.Binary) the same servers run
// as child processes of a given nats-server executable instead, to test
// against server versions other than go.mod's: devstack writes each a config
// file equivalent to the embedded options, next to its store directory, and
// gives it a monitoring port on 127.0.0.1, from which it reads readiness
// (/healthz), stream leaders and the meta group (/jsz). Shutdown sends
// SIGTERM (SIGKILL after 10 s); Restart starts the binary again on the same
// ports and store.
package devstack

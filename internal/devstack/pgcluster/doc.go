// Package pgcluster starts the PostgreSQL eventbus reads its changes from —
// a throwaway or dev cluster with logical replication enabled, and hot
// standbys of it — on the local machine, for tests and for the local dev run
// command (cmd/eventbus-dev). It is the one way that server is brought up,
// so tests and a developer's shell see the same configuration.
//
// # A cluster
//
// Start runs the machine's PostgreSQL server binaries (found with
// `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin). It creates
// a cluster with initdb when the data directory holds none and reuses it when
// it does, so a dev environment keeps its data between runs. The server
// listens on 127.0.0.1 only, on a free port unless one is given, with
// wal_level=logical and room for many replication slots. Settings pgcluster
// owns live in devstack.conf inside the data directory, included from
// postgresql.conf and rewritten before every start.
//
// PostgreSQL refuses to run as root. When the process is root, pgcluster
// hands the data directory to the `postgres` OS user and runs initdb and
// pg_ctl as that user; every ancestor of the data directory must then be
// searchable by it (os.MkdirTemp creates 0700 directories: chmod them 0755).
//
// The server's output goes to a log file next to the data directory
// (DATADIR.log); when a start fails, the error carries the tail of that log
// (package serverlog).
//
// Options.Settings adds postgresql.conf lines to devstack.conf. Kill stops a
// server as a crash of its host would (SIGKILL to all its processes at
// once); Promote ends a standby's recovery.
//
// CreateDatabase and DropDatabase work on any server given by URL, this
// package's or another (testenv's EVENTBUS_TEST_DATABASE_URL);
// ServerVersionNum reads the version of a bin directory's binaries without
// starting them.
//
// # A standby
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
package pgcluster

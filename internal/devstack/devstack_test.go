package devstack_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack"
	"github.com/eventbus/eventbus/internal/testenv"
)

// These tests drive devstack directly; testenv.Main adds the goroutine leak
// check, which also covers the embedded NATS server after Shutdown.
func TestMain(m *testing.M) { testenv.Main(m) }

// reachableTempDir returns a temp dir that the OS user postgres can enter
// when the tests run as root (t.TempDir's parent is 0700).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devstack-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { require.NoError(t, os.RemoveAll(dir)) })
	return dir
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dataDir := filepath.Join(reachableTempDir(t), "pg", "data")

	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: dataDir, Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pg.Stop()) })
	require.NotZero(t, pg.Port())
	require.Equal(t, "postgres://postgres@127.0.0.1:"+strconv.Itoa(pg.Port())+"/app?sslmode=disable", pg.URL("app"))

	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	require.NoError(t, err)
	var walLevel string
	require.NoError(t, conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel))
	require.Equal(t, "logical", walLevel)
	require.NoError(t, conn.Close(ctx))

	appURL, err := pg.CreateDatabase(ctx, "app")
	require.NoError(t, err)
	require.Equal(t, pg.URL("app"), appURL)
	conn, err = pgx.Connect(ctx, appURL)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
	require.NoError(t, err)

	port := pg.Port()
	require.NoError(t, pg.Restart(ctx))
	require.Equal(t, port, pg.Port())
	require.Error(t, conn.Ping(ctx), "a connection from before the restart is cut")
	_ = conn.Close(ctx)
	conn, err = pgx.Connect(ctx, appURL)
	require.NoError(t, err, "reconnect after restart")
	require.NoError(t, conn.Close(ctx))

	// Stopping removes nothing of the cluster: starting on the same data dir
	// and port brings the database back.
	require.NoError(t, pg.Stop())
	require.NoError(t, pg.Stop(), "stop is idempotent")
	require.Error(t, pg.Restart(ctx), "a stopped Postgres stays stopped")

	pg2, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: dataDir, Port: port, Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pg2.Stop()) })
	conn, err = pgx.Connect(ctx, appURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n))
	require.Equal(t, 1, n)
}

func TestStartPostgresPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()

	_, err = devstack.StartPostgres(t.Context(), devstack.PostgresOptions{Port: l.Addr().(*net.TCPAddr).Port, Fast: true})
	require.Error(t, err)
	require.ErrorContains(t, err, "Address already in use", "the error carries the server log")
}

func TestDropDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Fast: true, BinDir: os.Getenv(testenv.PGBinDirEnv), Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pg.Stop()) })

	dbURL, err := pg.CreateDatabase(ctx, "busy")
	require.NoError(t, err)

	// A database with a client and a streaming replication slot.
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE PUBLICATION pub FOR ALL TABLES")
	require.NoError(t, err)
	repl, err := pgconn.Connect(ctx, dbURL+"&replication=database")
	require.NoError(t, err)
	defer repl.Close(ctx)
	_, err = pglogrepl.CreateReplicationSlot(ctx, repl, "slot", "pgoutput", pglogrepl.CreateReplicationSlotOptions{})
	require.NoError(t, err)
	require.NoError(t, pglogrepl.StartReplication(ctx, repl, "slot", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'pub'"},
	}))

	serverURL := pg.URL("postgres")
	require.NoError(t, devstack.DropDatabase(ctx, serverURL, "busy"))
	require.NoError(t, devstack.DropDatabase(ctx, serverURL, "busy"), "dropping a missing database is harmless")

	admin, err := pgx.Connect(ctx, serverURL)
	require.NoError(t, err)
	defer admin.Close(ctx)
	var dbs, slots int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'busy'").Scan(&dbs))
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots))
	require.Zero(t, dbs)
	require.Zero(t, slots)
}

func TestNATS(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	n, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir(), Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(n.Shutdown)
	require.Equal(t, "nats://127.0.0.1:"+strconv.Itoa(n.Port()), n.URL())

	publish := func(data string) (stored uint64) {
		t.Helper()
		nc, err := nats.Connect(n.URL())
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
		require.NoError(t, err)
		_, err = js.Publish(ctx, "events.created", []byte(data))
		require.NoError(t, err)
		info, err := stream.Info(ctx)
		require.NoError(t, err)
		return info.State.Msgs
	}
	require.EqualValues(t, 1, publish("one"))

	port := n.Port()
	n.Shutdown()
	n.Shutdown() // idempotent
	_, err = nats.Connect(n.URL(), nats.MaxReconnects(0))
	require.Error(t, err, "the server is down")

	require.NoError(t, n.Restart())
	require.Equal(t, port, n.Port())
	require.EqualValues(t, 2, publish("two"), "the stream kept its message across the restart")
}

func TestNATSMaxPayload(t *testing.T) {
	t.Parallel()
	n, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: t.TempDir(), MaxPayload: 4096})
	require.NoError(t, err)
	t.Cleanup(n.Shutdown)

	nc, err := nats.Connect(n.URL())
	require.NoError(t, err)
	defer nc.Close()
	require.EqualValues(t, 4096, nc.MaxPayload())
}

func TestStartNATSNeedsStoreDir(t *testing.T) {
	t.Parallel()
	_, err := devstack.StartNATS(devstack.NATSOptions{})
	require.ErrorContains(t, err, "StoreDir")
}

func TestCreateDatabaseRejectsNonURL(t *testing.T) {
	t.Parallel()
	_, err := devstack.CreateDatabase(context.Background(), "host=127.0.0.1 user=postgres", "x")
	require.ErrorContains(t, err, "postgres://")
}

func TestNATSCluster(t *testing.T) {
	t.Parallel()
	testNATSCluster(t, "", "")
}

// TestNATSClusterBinary is TestNATSCluster with the nodes run from the
// nats-server of EVENTBUS_TEST_NATS_SERVER.
func TestNATSClusterBinary(t *testing.T) {
	t.Parallel()
	bin, version := natsServerBinary(t)
	testNATSCluster(t, bin, version)
}

// testNATSCluster runs a cluster of binary (empty: embedded), which reports
// version (empty: not checked).
func testNATSCluster(t *testing.T, binary, version string) {
	ctx := t.Context()
	c, err := devstack.StartNATSCluster(3, devstack.NATSClusterOptions{StoreDir: t.TempDir(), SyncAlways: true, Binary: binary, Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(c.Shutdown)
	nodes := c.Nodes()
	require.Len(t, nodes, 3)
	urls := strings.Split(c.URL(), ",")
	require.Len(t, urls, 3)
	for i, n := range nodes {
		require.Equal(t, "eventbus-"+strconv.Itoa(i+1), n.Name())
		require.Equal(t, n.URL(), urls[i])
	}

	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	if version != "" {
		require.Equal(t, version, nc.ConnectedServerVersion())
	}
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Replicas: 3})
	require.NoError(t, err)
	// publish retries while the stream has no leader (an election after a
	// node went down).
	publish := func(data string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := js.Publish(ctx, "events.created", []byte(data), jetstream.WithMsgID(data))
			if err == nil {
				return
			}
			require.False(t, time.Now().After(deadline), "publish %s: %v", data, err)
			time.Sleep(50 * time.Millisecond)
		}
	}
	// replicas waits until the stream is stored on every node, each current,
	// and returns its leader.
	replicas := func() (leader string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			info, err := stream.Info(ctx)
			state := fmt.Sprint(err)
			if err == nil {
				state = fmt.Sprintf("leader %q, replicas %d", info.Cluster.Leader, len(info.Cluster.Replicas))
				current := info.Cluster.Leader != "" && len(info.Cluster.Replicas) == 2
				for _, r := range info.Cluster.Replicas {
					current = current && r.Current && !r.Offline
					state += fmt.Sprintf(" %s current=%v offline=%v", r.Name, r.Current, r.Offline)
				}
				if current {
					return info.Cluster.Leader
				}
			}
			require.False(t, time.Now().After(deadline), "stream EVENTS not replicated on 3 current nodes: %s", state)
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish("one")
	leader := replicas()
	require.NotNil(t, c.StreamLeader("EVENTS"))
	require.Equal(t, leader, c.StreamLeader("EVENTS").Name(), "the leader the servers know is the one JetStream reports")
	require.Nil(t, c.StreamLeader("MISSING"))

	// The stream leader goes down: the other two elect a leader and go on.
	var down *devstack.NATS
	for _, n := range nodes {
		if n.Name() == leader {
			down = n
		}
	}
	require.NotNil(t, down, "stream leader %q is a node", leader)
	port := down.Port()
	down.Shutdown()
	publish("two")

	// It comes back on the same port and store, and catches up.
	require.NoError(t, down.Restart())
	require.Equal(t, port, down.Port())
	require.NoError(t, c.WaitReady(30*time.Second))
	replicas()
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs)

	direct, err := nats.Connect(down.URL())
	require.NoError(t, err, "the restarted node takes clients on its old port")
	direct.Close()
}

func TestStartNATSClusterNeedsStoreDirAndSize(t *testing.T) {
	t.Parallel()
	_, err := devstack.StartNATSCluster(3, devstack.NATSClusterOptions{})
	require.ErrorContains(t, err, "StoreDir")
	_, err = devstack.StartNATSCluster(1, devstack.NATSClusterOptions{StoreDir: t.TempDir()})
	require.ErrorContains(t, err, "at least 2")
}

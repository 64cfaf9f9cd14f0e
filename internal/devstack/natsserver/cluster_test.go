package natsserver_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/testenv"
)

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
	c, err := natsserver.StartCluster(3, natsserver.ClusterOptions{StoreDir: t.TempDir(), SyncAlways: true, Binary: binary, Log: testenv.Logger(t)})
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
	var down *natsserver.Server
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
	_, err := natsserver.StartCluster(3, natsserver.ClusterOptions{})
	require.ErrorContains(t, err, "StoreDir")
	_, err = natsserver.StartCluster(1, natsserver.ClusterOptions{StoreDir: t.TempDir()})
	require.ErrorContains(t, err, "at least 2")
}

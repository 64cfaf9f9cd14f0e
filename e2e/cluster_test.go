package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/testenv"
)

// TestClusterFailoverMidBurstLosesNothing runs the relay against a
// three-node JetStream cluster holding the stream as R3, and moves the
// stream's leadership and kills a node while a burst is being delivered:
//
//  1. the stream leader steps down, leadership moving to the node the relay
//     is connected to;
//  2. that node is shut down right after (the relay loses its connection and
//     the stream its leader at once), then restarted on the same ports and
//     store.
//
// Every event must end in the stream exactly once, every row processed, and
// no event counted as failed or retried. Since every row is processed and
// the stream holds every event, no row was marked processed without its
// PubAck: an event marked for a publish the cluster lost would be missing
// from the stream.
func TestClusterFailoverMidBurstLosesNothing(t *testing.T) {
	t.Parallel()
	cluster := testenv.NATSCluster(t, 3)
	e := setup(t, withNATSCluster(cluster))
	ctx := t.Context()
	c := e.connectCluster()

	// The operator's R3 stream: the relay leaves an existing stream as it
	// is (it would create an R1 stream otherwise).
	_, err := c.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: e.stream, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage, Replicas: 3,
	})
	require.NoError(t, err)
	c.waitReplicated()

	relay := e.startRelay()
	warm := e.warmUp()
	require.Equal(t, 3, c.streamInfo().Config.Replicas, "the relay kept the stream as created")
	// Leadership is to move to the node the relay is connected to.
	target := c.relayNode(relay)
	if c.cluster.StreamLeader(e.stream) == target {
		c.stepDown(c.otherThan(target.Name()))
	}

	const writers, perWriter = 3, 1000
	const total = writers * perWriter
	w := e.startWriters(ctx, writers, perWriter)
	state := func() string {
		c := e.statusCounts()
		return fmt.Sprintf("%d of %d events written, %d processed, %d pending", w.written.Load(), total, c["processed"], c["pending"])
	}
	processedAtLeast := func(n int) {
		t.Helper()
		eventually(t, 2*time.Minute, func() (bool, string) {
			return e.statusCounts()["processed"] >= min(n, total+1), state()
		})
	}

	// 1. Mid-burst, the stream leader steps down, to the relay's node.
	processedAtLeast(total / 10)
	c.stepDown(target.Name())

	// 2. At once that node goes down, taking the relay's connection and
	// the stream's leader with it, and comes back on the same ports and store
	// once the relay has delivered events without it.
	node := c.relayNode(relay)
	leader := c.cluster.StreamLeader(e.stream)
	node.Shutdown()
	written, atKill := w.written.Load(), e.statusCounts()
	t.Logf("%s shut down (stream leader: %v) with %d events written, %d processed, %d pending",
		node.Name(), leader == node, written, atKill["processed"], atKill["pending"])
	require.Less(t, atKill["processed"], total+1, "the node goes down while the burst is being delivered")
	processedAtLeast(atKill["processed"] + total/10)
	require.NoError(t, node.Restart())
	require.NoError(t, cluster.WaitReady(time.Minute))
	t.Logf("%s restarted: %s; the relay is connected to %s", node.Name(), state(), c.relayNode(relay).Name())

	ids := append(w.wait(), warm)
	e.requireDeliveredOnce(ids, 3*time.Minute)
	var retried int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM public.event_bus WHERE retry_count > 0 OR error_message IS NOT NULL`).Scan(&retried))
	require.Zero(t, retried, "a leader change or a lost node counts against no event's retries")
	relay.requireRunning()

	// The restarted node caught up: read the stream again with it as leader.
	c.waitReplicated()
	c.stepDown(node.Name())
	e.requireDeliveredOnce(ids, time.Minute)
	out := relay.out.String()
	t.Logf("relay sessions ended and retried: %d; stream leader step-downs asked for: %d",
		strings.Count(out, "relay session ended"), strings.Count(out, "asking it to step down"))
}

// clusterClient is the test's own connection to the cluster, for the stream
// API the relay does not use.
type clusterClient struct {
	e       *env
	cluster *natsserver.Cluster
	nc      *nats.Conn
	js      jetstream.JetStream
}

func (e *env) connectCluster() *clusterClient {
	e.t.Helper()
	nc, err := nats.Connect(e.cluster.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(e.t, err)
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(e.t, err)
	return &clusterClient{e: e, cluster: e.cluster, nc: nc, js: js}
}

// streamInfo returns the stream's info, retrying while the stream has no
// leader to answer (an election, a node reconnecting).
func (c *clusterClient) streamInfo() *jetstream.StreamInfo {
	t := c.e.t
	t.Helper()
	var info *jetstream.StreamInfo
	eventually(t, time.Minute, func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		s, err := c.js.Stream(ctx, c.e.stream)
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err == nil && info.Cluster == nil {
			err = fmt.Errorf("stream %s has no cluster info", c.e.stream)
		}
		return err == nil, fmt.Sprintf("stream info: %v", err)
	})
	return info
}

// waitReplicated waits until the stream has a leader and two replicas, both
// online and current.
func (c *clusterClient) waitReplicated() {
	t := c.e.t
	t.Helper()
	eventually(t, time.Minute, func() (bool, string) {
		cl := c.streamInfo().Cluster
		ok := cl.Leader != "" && len(cl.Replicas) == 2
		state := fmt.Sprintf("leader %q", cl.Leader)
		for _, r := range cl.Replicas {
			ok = ok && r.Current && !r.Offline
			state += fmt.Sprintf(", replica %s current=%v offline=%v lag=%d", r.Name, r.Current, r.Offline, r.Lag)
		}
		return ok, state
	})
}

// stepDown asks the stream leader to hand leadership to the node named
// preferred, and waits until it has. The leader is read from the servers
// (in this process, or their monitoring ports), not asked over the API, so
// the wait ends as soon as the election does.
func (c *clusterClient) stepDown(preferred string) {
	t := c.e.t
	t.Helper()
	req, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	require.NoError(t, err)
	// A preferred leader is NATS 2.11's: 2.10 refuses the request as "bad
	// request". A plain step down hands leadership to another replica at
	// random, and the loop asks again until it is preferred.
	if !serverAtLeast(c.nc, 2, 11) {
		req = nil
	}
	started := time.Now()
	for {
		leader := c.cluster.StreamLeader(c.e.stream)
		if leader != nil && leader.Name() == preferred {
			t.Logf("stream leader moved to %s in %s", preferred, time.Since(started).Round(time.Millisecond))
			return
		}
		if time.Since(started) > time.Minute {
			t.Fatalf("stream %s: leadership did not move to %s within a minute; leader %v", c.e.stream, preferred, leader)
		}
		if leader == nil { // an election: wait for its outcome
			time.Sleep(5 * time.Millisecond)
			continue
		}
		// A request that fails (the preferred node not current yet) is sent
		// again; one that succeeded gets time for the election before
		// another would move leadership once more.
		msg, err := c.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+c.e.stream, req, 5*time.Second)
		var resp struct {
			Success bool                `json:"success"`
			Error   *jetstream.APIError `json:"error"`
		}
		if err == nil {
			err = json.Unmarshal(msg.Data, &resp)
		}
		if err == nil && !resp.Success {
			err = fmt.Errorf("refused: %s", msg.Data)
		}
		if err != nil {
			t.Logf("step down to %s: %v", preferred, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for asked := time.Now(); time.Since(asked) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
			if now := c.cluster.StreamLeader(c.e.stream); now != nil && now != leader {
				break
			}
		}
	}
}

// otherThan returns the name of a node other than name.
func (c *clusterClient) otherThan(name string) string {
	for _, n := range c.cluster.Nodes() {
		if n.Name() != name {
			return n.Name()
		}
	}
	c.e.t.Fatalf("no node other than %s", name)
	return ""
}

// connectedURL finds the URL in the relay's "nats connected" and "nats
// reconnected" log lines.
var connectedURL = regexp.MustCompile(`msg="nats (?:re)?connected" url=(\S+)`)

// relayNode returns the node the relay's NATS connection is on, as its log
// says last.
func (c *clusterClient) relayNode(p *relayProc) *natsserver.Server {
	t := c.e.t
	t.Helper()
	var node *natsserver.Server
	eventually(t, 30*time.Second, func() (bool, string) {
		found := connectedURL.FindAllStringSubmatch(p.out.String(), -1)
		if len(found) == 0 {
			return false, "the relay has not logged a NATS connection"
		}
		url := found[len(found)-1][1]
		for _, n := range c.cluster.Nodes() {
			if n.URL() == url {
				node = n
				return true, ""
			}
		}
		return false, fmt.Sprintf("the relay connected to %s, no node of %s", url, c.cluster.URL())
	})
	return node
}

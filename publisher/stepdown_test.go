package publisher

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/testenv"
)

func TestInProcessIsABrokerErrorThatKeepsTheServersText(t *testing.T) {
	server := &jetstream.APIError{Code: 409, ErrorCode: 10158, Description: "duplicate message id is in process"}
	err := classify(fmt.Errorf("publish: %w", server))
	require.ErrorIs(t, err, ErrInProcess)
	assert.NotErrorIs(t, err, ErrRejected, "the event is sent again, counting no attempt")
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "publish: nats: API error: code=409 err_code=10158 description=duplicate message id is in process", err.Error())

	assert.NotErrorIs(t, classify(&jetstream.APIError{Code: 503, ErrorCode: 10008}), ErrInProcess)
	assert.NotErrorIs(t, classify(errors.New("nats: timeout")), ErrInProcess)
}

func TestStepDownStreamLeaderMovesTheLeadership(t *testing.T) {
	cluster, err := natsserver.StartCluster(3, natsserver.ClusterOptions{StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(cluster.Shutdown)
	p, err := Connect(t.Context(), Options{URL: cluster.URL(), Stream: "STEPDOWN", SubjectPrefix: "stepdown"})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	_, err = p.js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: "STEPDOWN", Subjects: []string{"stepdown.>"}, Storage: jetstream.FileStorage, Replicas: 3,
	})
	require.NoError(t, err)
	leader := waitForLeader(t, cluster, "STEPDOWN", nil)

	require.NoError(t, p.StepDownStreamLeader(t.Context()))
	next := waitForLeader(t, cluster, "STEPDOWN", leader)
	assert.NotEqual(t, leader.Name(), next.Name())

	// The stream takes the relay's events under its new leader.
	a, err := p.Publish(testEvent(1))
	require.NoError(t, err)
	require.NoError(t, a.Wait(t.Context()))
}

func TestStepDownOfAStreamWithoutReplicasIsAnError(t *testing.T) {
	_, p := startPublisher(t, Options{})
	err := p.StepDownStreamLeader(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "step down the leader of stream ACKS")
}

// waitForLeader waits until some node other than not leads stream.
func waitForLeader(t *testing.T, c *natsserver.Cluster, stream string, not *natsserver.Server) *natsserver.Server {
	t.Helper()
	var leader *natsserver.Server
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		leader = c.StreamLeader(stream)
		return leader != nil && leader != not, "stream " + stream + ": no new leader"
	})
	return leader
}

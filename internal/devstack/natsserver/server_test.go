package natsserver_test

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/testenv"
)

// These tests drive natsserver directly. goleak checks that no goroutine
// outlives them, the embedded server's after Shutdown included.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNATS(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	n, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Log: testenv.Logger(t)})
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
	n, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), MaxPayload: 4096})
	require.NoError(t, err)
	t.Cleanup(n.Shutdown)

	nc, err := nats.Connect(n.URL())
	require.NoError(t, err)
	defer nc.Close()
	require.EqualValues(t, 4096, nc.MaxPayload())
}

func TestStartNATSNeedsStoreDir(t *testing.T) {
	t.Parallel()
	_, err := natsserver.Start(natsserver.Options{})
	require.ErrorContains(t, err, "StoreDir")
}

package natsserver_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
	"github.com/eventbus/eventbus/internal/testenv"
)

// natsServerBinary returns EVENTBUS_TEST_NATS_SERVER and the version the
// binary reports, skipping the test when it is unset: this machine's tests
// otherwise have no nats-server binary to run.
func natsServerBinary(t *testing.T) (path, version string) {
	t.Helper()
	path = testenv.NATSServer()
	if path == "" {
		t.Skip(testenv.NATSServerEnv + " is unset: no nats-server binary to test (scripts/install-nats-server.sh VERSION builds one)")
	}
	out, err := exec.Command(path, "--version").Output()
	require.NoError(t, err, "%s --version", path)
	// "nats-server: v2.10.27"
	_, version, ok := strings.Cut(strings.TrimSpace(string(out)), ": v")
	require.True(t, ok, "%s --version printed %q", path, out)
	return path, version
}

func TestNATSBinary(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bin, version := natsServerBinary(t)
	store := filepath.Join(t.TempDir(), "nats")
	n, err := natsserver.Start(natsserver.Options{StoreDir: store, MaxPayload: 4096, Binary: bin, Log: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(n.Shutdown)
	require.NotZero(t, n.Port())

	connect := func() (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		nc, err := nats.Connect(n.URL())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		require.Equal(t, version, nc.ConnectedServerVersion(), "the client talks to the binary's server, not go.mod's")
		require.EqualValues(t, 4096, nc.MaxPayload(), "the config file carries MaxPayload")
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		return nc, js
	}
	nc, js := connect()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "events.created", []byte("one"))
	require.NoError(t, err)
	nc.Close()

	port := n.Port()
	n.Shutdown()
	n.Shutdown() // idempotent
	_, err = nats.Connect(n.URL(), nats.MaxReconnects(0))
	require.Error(t, err, "the server is down")

	require.NoError(t, n.Restart())
	require.Equal(t, port, n.Port())
	_, js = connect()
	stream, err := js.Stream(ctx, "EVENTS")
	require.NoError(t, err, "the stream survived the restart")
	msg, err := stream.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "one", string(msg.Data), "the message survived the restart")
	_, err = os.Stat(filepath.Join(store, "jetstream"))
	require.NoError(t, err, "JetStream stores in StoreDir")
}

func TestNATSBinaryNotFound(t *testing.T) {
	t.Parallel()
	_, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Binary: filepath.Join(t.TempDir(), "nats-server")})
	require.ErrorContains(t, err, "nats: server binary")
}

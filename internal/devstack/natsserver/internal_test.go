package natsserver

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNATSSyncAlways(t *testing.T) {
	t.Parallel()
	for _, always := range []bool{false, true} {
		n, err := Start(Options{StoreDir: t.TempDir(), SyncAlways: always})
		require.NoError(t, err)
		cfg := n.running().JetStreamConfig()
		n.Shutdown()
		require.NotNil(t, cfg)
		require.Equal(t, always, cfg.SyncAlways, "JetStream sync_always with SyncAlways %v", always)
	}
}

// TestNATSBinarySyncAlways checks that the config file written for a child
// server carries SyncAlways (read back from its /jsz).
func TestNATSBinarySyncAlways(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("EVENTBUS_TEST_NATS_SERVER") // testenv imports natsserver
	if bin == "" {
		t.Skip("EVENTBUS_TEST_NATS_SERVER is unset: no nats-server binary to test")
	}
	for _, always := range []bool{false, true} {
		n, err := Start(Options{StoreDir: t.TempDir(), SyncAlways: always, Binary: bin})
		require.NoError(t, err)
		require.Nil(t, n.running(), "a child server has no *server.Server")
		j, err := n.jsz("")
		n.Shutdown()
		require.NoError(t, err)
		require.Equal(t, always, j.Config.SyncAlways, "JetStream sync_always with SyncAlways %v", always)
	}
}

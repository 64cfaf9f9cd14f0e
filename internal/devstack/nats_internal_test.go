package devstack

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNATSSyncAlways(t *testing.T) {
	t.Parallel()
	for _, always := range []bool{false, true} {
		n, err := StartNATS(NATSOptions{StoreDir: t.TempDir(), SyncAlways: always})
		require.NoError(t, err)
		cfg := n.running().JetStreamConfig()
		n.Shutdown()
		require.NotNil(t, cfg)
		require.Equal(t, always, cfg.SyncAlways, "JetStream sync_always with SyncAlways %v", always)
	}
}

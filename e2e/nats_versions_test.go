package e2e

import (
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// serverAtLeast reports whether the server nc is connected to is version
// major.minor or newer, for tests that use the servers' own APIs beyond what
// the relay needs (which is nothing newer than 2.10), when
// EVENTBUS_TEST_NATS_SERVER runs an older server than go.mod's.
func serverAtLeast(nc *nats.Conn, major, minor int) bool {
	parts := strings.SplitN(strings.TrimPrefix(nc.ConnectedServerVersion(), "v"), ".", 3)
	if len(parts) < 2 {
		return true // unknown: assume go.mod's server, the newest
	}
	gotMajor, err1 := strconv.Atoi(parts[0])
	gotMinor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return gotMajor > major || gotMajor == major && gotMinor >= minor
}

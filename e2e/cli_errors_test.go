package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// The first errors a new user meets say what is wrong in words of the
// setup: which NATS server cannot be reached, which database was not
// migrated, the server's message once.
func TestCLIErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	e := setup(t)

	t.Run("NATS unreachable", func(t *testing.T) {
		t.Parallel()
		addr := freeAddr(t) // nothing listens there
		natsURL := "nats://relay:nats-secret-pw@" + addr
		where := "NATS at nats://relay:xxxxx@" + addr + " is unreachable: "
		environ := append(e.environ(), "EVENTBUS_NATS_URL="+natsURL)

		r := runCLI(t, e.bin, environ, "replay", "--since", "1h")
		require.Equal(t, 1, r.code, "%s", r)
		requireOneLine(t, r.stderr, "eventbus replay: "+where+"look up stream "+e.stream+": ")
		assert.NotContains(t, r.stderr, "nats-secret-pw")

		r = runCLI(t, e.bin, environ, "verify")
		require.Equal(t, 1, r.code, "%s", r)
		requireOneLine(t, r.stderr, "eventbus verify: "+where)

		// The relay waits for NATS: its log says the same while it retries.
		p := e.startRelayEnv("EVENTBUS_NATS_URL=" + natsURL)
		eventually(t, 60*time.Second, func() (bool, string) {
			return strings.Contains(p.out.String(), where+"look up stream "+e.stream), p.out.String()
		})
		assert.NotContains(t, p.out.String(), "nats-secret-pw")
		require.Equal(t, 0, p.stop())
	})

	t.Run("database not migrated", func(t *testing.T) {
		t.Parallel()
		dbURL := testenv.Postgres(t) // a database of its own, without the schema
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		r := runCLI(t, e.bin, append(e.environ(), "EVENTBUS_DATABASE_URL="+dbURL), "status")
		require.Equal(t, 1, r.code, "%s", r)
		requireOneLine(t, r.stderr, fmt.Sprintf(`eventbus status: relation "public.event_bus" does not exist in database %q on %s: run eventbus migrate first`,
			strings.TrimPrefix(u.Path, "/"), u.Host))
	})

	t.Run("the server's message once", func(t *testing.T) {
		t.Parallel()
		r := e.cli("publish", "--event-type", "bad type", "--aggregate-type", "payment", "--aggregate-id", "p-1")
		require.Equal(t, 1, r.code, "%s", r)
		requireOneLine(t, r.stderr, `eventbus publish: publish_event: p_event_type "bad type" is not a valid event type`)
		assert.Equal(t, 1, strings.Count(r.stderr, "publish_event:"), "the function named once: %s", r.stderr)
		assert.NotContains(t, r.stderr, "ERROR:")
		assert.True(t, strings.HasSuffix(r.stderr, "(SQLSTATE 22023)\n"), "the SQLSTATE: %s", r.stderr)
	})
}

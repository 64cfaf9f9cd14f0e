package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var consumerBuild struct {
	once sync.Once
	path string
	err  error
}

// consumerBinary builds ./examples/consumer once per test process.
func consumerBinary(t *testing.T) string {
	t.Helper()
	consumerBuild.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		dir, err := os.MkdirTemp("", "eventbus-e2e-consumer")
		if err != nil {
			consumerBuild.err = err
			return
		}
		consumerBuild.path = filepath.Join(dir, "consumer")
		cmd := exec.Command("go", "build", "-race", "-o", consumerBuild.path, "./examples/consumer")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			consumerBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, consumerBuild.err)
	return consumerBuild.path
}

// startConsumer runs the example consumer against the test's stream; it
// prints one line per event it handles, starting with the event id.
func (e *env) startConsumer() *lineProc {
	e.t.Helper()
	cmd := exec.Command(consumerBinary(e.t), "-nats-url", e.nats.URL(), "-stream", e.stream,
		"-filter", "events.lead.>", "-name", "e2e-consumer")
	return startLines(e.t, "example consumer", cmd, "msg=consuming")
}

// TestConsumerExampleHandlesRelayedEventsOnce runs the example consumer of
// docs/consumers.md against the relay: it handles each lead event once,
// skips a replay of an event it handled, and resumes after a restart.
func TestConsumerExampleHandlesRelayedEventsOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.startRelay()
	e.warmUp()

	consumer := e.startConsumer()
	l1 := e.publish(ctx, "lead.created", "l-1", `{"n": 1}`)
	e.publish(ctx, "other.type", "o-1", `{}`)
	l2 := e.publish(ctx, "lead.status_updated", "l-1", `{}`)
	e.waitProcessed(4, 30*time.Second)
	requireHandled(t, consumer, l1, "lead.created")
	requireHandled(t, consumer, l2, "lead.status_updated")

	r := e.cli("replay", "--id", l1)
	require.Equal(t, 0, r.code, "%s", r)
	l3 := e.publish(ctx, "lead.created", "l-3", `{}`)
	requireHandled(t, consumer, l3, "lead.created") // not the replay of l1 first
	require.Equal(t, 0, consumer.stop(), "exit code after SIGTERM")

	l4 := e.publish(ctx, "lead.created", "l-4", `{}`)
	restarted := e.startConsumer()
	requireHandled(t, restarted, l4, "lead.created") // nothing acked comes again
	require.Equal(t, 0, restarted.stop(), "exit code after SIGTERM")
}

func requireHandled(t *testing.T, p *lineProc, id, eventType string) {
	t.Helper()
	fields := strings.Fields(p.next())
	require.GreaterOrEqual(t, len(fields), 2, "id and event type")
	require.Equal(t, []string{id, eventType}, fields[:2])
}

package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus/eventbus/internal/testenv"
)

// readyzAnswers polls GET addr/readyz every interval until stop is called,
// which returns every distinct answer ("200 ready\n") with how often it came.
func readyzAnswers(addr string, interval time.Duration) (stop func() map[string]int) {
	answers := map[string]int{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			code, body := httpGet(addr, "/readyz")
			answers[fmt.Sprintf("%d %s", code, body)]++
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() map[string]int {
		close(done)
		wg.Wait()
		return answers
	}
}

// The stream deleted under a running relay: an idle relay does not notice
// (it asks the stream nothing until it publishes; /readyz reports the
// replication session and the NATS connection), and the next event ends the
// session on "no responders": /readyz then says the stream is missing, and
// the next session creates it again, with the configured limits, and
// delivers the event. Every answer of /readyz meanwhile is 200 or that one.
func TestReadyzWhenTheStreamIsDeleted(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr, "EVENTBUS_DUPLICATE_WINDOW=3m", "EVENTBUS_STREAM_MAX_AGE=2d"))
	ctx := t.Context()
	js := e.jetStream()
	relay := e.startRelay()
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)
	e.warmUp()

	require.NoError(t, js.DeleteStream(ctx, e.stream))
	code, body := httpGet(addr, "/readyz")
	t.Logf("/readyz of an idle relay whose stream was deleted: %d %q", code, body)

	stop := readyzAnswers(addr, 10*time.Millisecond)
	id := e.publish(ctx, "stream.deleted", "d-1", `{}`)
	e.waitProcessed(2, 60*time.Second)
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)
	answers := stop()
	t.Logf("/readyz while the event was delivered: %v", answers)
	for answer := range answers {
		assert.Contains(t, []string{
			"200 ready\n",
			"503 not ready: not streaming from the replication slot: the stream is missing\n",
		}, answer, "a /readyz answer")
	}

	cfg := e.streamInfo(js, e.stream).Config
	assert.Equal(t, 3*time.Minute, cfg.Duplicates, "the recreated stream's duplicate window")
	assert.Equal(t, 48*time.Hour, cfg.MaxAge, "the recreated stream's max age")
	assert.Equal(t, jetstream.FileStorage, cfg.Storage)
	e.assertStreamHoldsOnce([]string{id})
	assert.Equal(t, 2, strings.Count(relay.out.String(), `msg="stream created"`), "created at start and again after the deletion")
	relay.requireRunning()
}

// A slow broker is still ready (CONTRACT v2: back-pressure, never an
// outage): with every byte from NATS delayed by a second, so that each
// PubAck takes that long, /readyz answers 200 throughout a burst, which is
// delivered once each by one replication session.
func TestReadyzStaysReadyUnderASlowBroker(t *testing.T) {
	addr := freeAddr(t)
	e := setup(t, withEnv("EVENTBUS_HTTP_ADDR="+addr))
	proxy := testenv.StartLatencyProxy(t, strings.TrimPrefix(e.nats.URL(), "nats://"), 0)
	relay := e.startRelayEnv("EVENTBUS_NATS_URL=nats://"+proxy.Addr(), "EVENTBUS_PUBLISH_WINDOW=100")
	waitHTTP(t, 30*time.Second, addr, "/readyz", http.StatusOK)
	warm := e.warmUp()

	proxy.SetDelay(time.Second)
	stop := readyzAnswers(addr, 100*time.Millisecond)
	started := time.Now()
	ids := e.publishBurst("test.slow", 1000, 250)
	e.waitProcessed(len(ids)+1, 2*time.Minute)
	took := time.Since(started)
	answers := stop()
	t.Logf("1000 events through a 1 s link in %s; /readyz: %v", took.Round(time.Millisecond), answers)
	require.Greater(t, took, 5*time.Second, "the link was slow")
	assert.Equal(t, []string{"200 ready\n"}, slices.Collect(maps.Keys(answers)), "every /readyz answer during the burst")

	proxy.SetDelay(0)
	ids = append(ids, e.publish(t.Context(), "test.slow", "after", `{}`))
	e.waitProcessed(len(ids)+1, 30*time.Second)
	e.assertStreamHoldsOnce(append(ids, warm))
	assert.NotContains(t, relay.out.String(), "relay session ended", "one session throughout")
	assert.Equal(t, 0, relay.stop())
}

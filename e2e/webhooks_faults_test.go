package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startDeliverer starts `eventbus deliver`; the test's cleanup kills it.
func (e *env) startDeliverer(kv ...string) *relayProc {
	e.t.Helper()
	return e.startCommand("deliver", kv...)
}

func (e *env) run(args ...string) string {
	e.t.Helper()
	out, err := e.command(args...).CombinedOutput()
	require.NoError(e.t, err, "eventbus %s: %s", strings.Join(args, " "), out)
	return string(out)
}

func (e *env) deliveredCount(webhookID string) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.QueryRow(e.t.Context(), `SELECT count(*) FROM public.event_webhook_deliveries
		WHERE webhook_id = $1::uuid AND status = 'delivered'`, webhookID).Scan(&n))
	return n
}

// Two deliverers (the relay's and an `eventbus deliver`) share the work; one
// of them killed with SIGKILL in the middle of a burst loses no delivery:
// every event reaches the endpoint, each at least once, and every delivery
// ends delivered.
func TestWebhookDeliverersShareAndSurviveKill9(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true", "EVENTBUS_WEBHOOK_TIMEOUT=2s"))
	ctx := t.Context()
	// From the 60th request on the endpoint holds its answers until gate
	// opens, so that the kill lands while attempts are in flight.
	gate := make(chan struct{})
	var gateOnce sync.Once
	openGate := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(openGate)
	r := newHookReceiver(t, func(n int, w http.ResponseWriter) {
		if n >= 60 {
			<-gate
		}
		w.WriteHeader(http.StatusOK)
	})
	hookID, _ := e.addWebhook("--url", r.srv.URL)
	e.startRelayEnv("EVENTBUS_WEBHOOKS=false") // the relay only relays
	first := e.startDeliverer()
	e.startDeliverer()
	e.waitWebhookConsumer()

	const n = 300
	want := map[string]bool{}
	for i := range n {
		want[e.publish(ctx, "order.placed", fmt.Sprintf("o-%d", i), `{}`)] = true
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		got := len(r.requests())
		return got >= 64, fmt.Sprintf("%d requests", got)
	})
	first.kill() // with attempts in flight: the endpoint holds them
	openGate()
	e.startDeliverer() // a replacement, as a supervisor would start one

	eventually(t, 120*time.Second, func() (bool, string) {
		got := e.deliveredCount(hookID)
		return got == n, fmt.Sprintf("%d of %d delivered", got, n)
	})
	seen := map[string]int{}
	for _, req := range r.requests() {
		seen[req.header.Get("webhook-id")]++
	}
	for id := range want {
		assert.GreaterOrEqual(t, seen[id], 1, "event %s delivered", id)
	}
	assert.Len(t, seen, n, "nothing but the events")
	extra := len(r.requests()) - n
	assert.LessOrEqual(t, extra, 32, "at-least-once: only what the killed deliverer had in flight is sent again (%d)", extra)
}

// A hanging endpoint holds its own slots only: a healthy endpoint receives
// every event while the other's attempts are still waiting to time out.
func TestWebhookHangingEndpointDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true", "EVENTBUS_WEBHOOK_TIMEOUT=60s"))
	ctx := t.Context()
	release := make(chan struct{})
	hanging := newHookReceiver(t, func(_ int, w http.ResponseWriter) { <-release })
	t.Cleanup(func() { close(release) })
	healthy := newHookReceiver(t, nil)
	hangingID, _ := e.addWebhook("--url", hanging.srv.URL)
	healthyID, _ := e.addWebhook("--url", healthy.srv.URL)
	e.startRelay()
	e.waitWebhookConsumer()
	const n = 50
	for i := range n {
		e.publish(ctx, "order.placed", fmt.Sprintf("o-%d", i), `{}`)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		got := e.deliveredCount(healthyID)
		return got == n, fmt.Sprintf("healthy: %d of %d delivered", got, n)
	})
	assert.Zero(t, e.deliveredCount(hangingID), "the hanging endpoint has answered nothing")
	assert.LessOrEqual(t, len(hanging.requests()), 4, "at most 4 attempts at once per endpoint")
}

// rotate-secret: deliveries after it carry two signatures, one with the new
// secret and one with the old, which stays valid for 24 h; redeliver makes
// a failed delivery pending again and it is delivered.
func TestWebhookSecretRotationAndRedeliver(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true", "EVENTBUS_WEBHOOK_MAX_ATTEMPTS=1"))
	ctx := t.Context()
	var fail atomic.Bool
	fail.Store(true)
	r := newHookReceiver(t, func(_ int, w http.ResponseWriter) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hookID, oldSecret := e.addWebhook("--url", r.srv.URL)
	newSecret := strings.TrimSpace(e.run("webhook", "rotate-secret", hookID))
	require.True(t, strings.HasPrefix(newSecret, "whsec_"), newSecret)
	require.NotEqual(t, oldSecret, newSecret)
	e.startRelay()
	e.waitWebhookConsumer()

	id := e.publish(ctx, "order.placed", "o-1", `{}`)
	eventually(t, 60*time.Second, func() (bool, string) {
		st := e.deliveryStatuses(hookID)[id]
		return st == "failed", "delivery " + st
	})
	req := r.requests()[0]
	sigs := strings.Fields(req.header.Get("webhook-signature"))
	require.Len(t, sigs, 2, "new and old secret: %v", sigs)
	for _, secret := range []string{newSecret, oldSecret} {
		verifySignature(t, secret, req)
	}
	assert.Equal(t, sign(t, newSecret, req), sigs[0], "the new secret's signature first")

	fail.Store(false)
	var deliveryID string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT id::text FROM public.event_webhook_deliveries WHERE webhook_id = $1::uuid`, hookID).Scan(&deliveryID))
	out := e.run("webhook", "redeliver", "--failed", "--webhook", hookID)
	assert.Contains(t, out, "1 deliveries pending again")
	eventually(t, 60*time.Second, func() (bool, string) {
		st := e.deliveryStatuses(hookID)[id]
		return st == "delivered", "delivery " + st
	})
	listed := e.run("webhook", "deliveries", "--webhook", hookID, "--json")
	assert.Contains(t, listed, deliveryID)
	assert.Contains(t, listed, `"status": "delivered"`)

	assert.Contains(t, e.run("webhook", "list"), hookID)
	assert.Contains(t, e.run("webhook", "remove", hookID), "removed "+hookID)
	assert.Equal(t, "[]\n", e.run("webhook", "list", "--json"), "removed, with its deliveries")
	assert.Empty(t, e.deliveryStatuses(hookID))

	cmd := e.command("webhook", "redeliver")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 2, exit.ExitCode(), "usage error: %s", stderr.String())
}

// sign is the v1 signature of r with secret, from the spec.
func sign(t *testing.T, secret string, r hookRequest) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.header.Get("webhook-id") + "." + r.header.Get("webhook-timestamp") + "."))
	mac.Write(r.body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// A replayed event is delivered again, under the replay's fresh
// Nats-Msg-Id as webhook-id (CONTRACT.md v2).
func TestWebhookReplayIsDeliveredAgainUnderAFreshID(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true"))
	ctx := t.Context()
	r := newHookReceiver(t, nil)
	hookID, secret := e.addWebhook("--url", r.srv.URL)
	e.startRelay()
	e.waitWebhookConsumer()
	id := e.publish(ctx, "order.placed", "o-1", `{}`)
	eventually(t, 60*time.Second, func() (bool, string) {
		return len(r.requests()) == 1, fmt.Sprintf("%d requests", len(r.requests()))
	})
	e.run("replay", "--id", id)
	eventually(t, 60*time.Second, func() (bool, string) {
		return len(r.requests()) == 2 && e.deliveredCount(hookID) == 2, fmt.Sprintf("%d requests, %d delivered", len(r.requests()), e.deliveredCount(hookID))
	})
	reqs := r.requests()
	assert.Equal(t, id, reqs[0].header.Get("webhook-id"))
	replayID := reqs[1].header.Get("webhook-id")
	assert.NotEqual(t, id, replayID, "a fresh webhook-id")
	assert.NotEmpty(t, replayID)
	var b body
	require.NoError(t, json.Unmarshal(reqs[1].body, &b))
	assert.Equal(t, id, b.ID, "the same event")
	for _, req := range reqs {
		verifySignature(t, secret, req)
	}
}

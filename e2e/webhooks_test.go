package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hookRequest is one request a test receiver got.
type hookRequest struct {
	header http.Header
	body   []byte
}

// hookReceiver is a real HTTP server on loopback that records what it gets
// and answers with respond (nil: 204).
type hookReceiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []hookRequest
	respond func(n int, w http.ResponseWriter) // n: 1 for the first request
}

func newHookReceiver(t *testing.T, respond func(n int, w http.ResponseWriter)) *hookReceiver {
	r := &hookReceiver{respond: respond}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, hookRequest{header: req.Header.Clone(), body: body})
		n := len(r.got)
		r.mu.Unlock()
		if r.respond != nil {
			r.respond(n, w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) requests() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookRequest(nil), r.got...)
}

// verifySignature checks a request as the Standard Webhooks spec says,
// written here from the spec rather than with the product's code: the
// signature is base64(HMAC-SHA256(base64-decoded secret, id.timestamp.body)).
func verifySignature(t *testing.T, secret string, r hookRequest) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	id, ts := r.header.Get("webhook-id"), r.header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(r.body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	assert.Contains(t, strings.Fields(r.header.Get("webhook-signature")), want, "signature of %s", id)
	sec, err := strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err)
	assert.InDelta(t, time.Now().Unix(), sec, 120, "webhook-timestamp is now, in unix seconds")
}

// addWebhook runs `eventbus webhook add` and returns the id and secret it printed.
func (e *env) addWebhook(args ...string) (id, secret string) {
	e.t.Helper()
	cmd := e.command(append([]string{"webhook", "add"}, args...)...)
	cmd.Env = append(cmd.Env, "EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true")
	out, err := cmd.CombinedOutput()
	require.NoError(e.t, err, "webhook add: %s", out)
	lines := strings.Fields(string(out))
	require.Len(e.t, lines, 2, "id and secret: %s", out)
	require.True(e.t, strings.HasPrefix(lines[1], "whsec_"), lines[1])
	return lines[0], lines[1]
}

func (e *env) publishFor(ctx context.Context, org, eventType string) string {
	e.t.Helper()
	var id string
	require.NoError(e.t, e.db.QueryRow(ctx,
		`SELECT public.publish_event($1, 'test', 'agg-1', '{"n": 1}'::jsonb, '{}'::jsonb, $2::uuid)::text`,
		eventType, org).Scan(&id))
	return id
}

// waitWebhookConsumer waits until the deliverers' durable consumer exists:
// it starts at the oldest endpoint's creation, so events published before
// it exists are delivered too, but a test that counts deliveries wants the
// deliverer running first.
func (e *env) waitWebhookConsumer() {
	e.t.Helper()
	nc, err := nats.Connect(e.natsURL())
	require.NoError(e.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(e.t, err)
	eventually(e.t, 60*time.Second, func() (bool, string) {
		_, err := js.Consumer(e.t.Context(), e.stream, "eventbus-webhooks")
		return err == nil, fmt.Sprintf("consumer: %v", err)
	})
}

func (e *env) deliveryStatuses(webhookID string) map[string]string {
	e.t.Helper()
	rows, err := e.db.Query(e.t.Context(), `SELECT event_id::text, status FROM public.event_webhook_deliveries WHERE webhook_id = $1::uuid`, webhookID)
	require.NoError(e.t, err)
	got := map[string]string{}
	for rows.Next() {
		var id, status string
		require.NoError(e.t, rows.Scan(&id, &status))
		got[id] = status
	}
	require.NoError(e.t, rows.Err())
	return got
}

// An endpoint receives exactly its organization's events whose type matches
// a pattern (lead.* one token, lead.> any), signed as Standard Webhooks says;
// an endpoint for every organization receives both organizations' events.
func TestWebhooksDeliverSignedEventsOfTheirOrganizationAndTypes(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true"))
	ctx := t.Context()
	const orgA, orgB = "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b"
	ra, rb, rall := newHookReceiver(t, nil), newHookReceiver(t, nil), newHookReceiver(t, nil)
	hookA, secretA := e.addWebhook("--url", ra.srv.URL+"/a", "--organization-id", orgA, "--event-type", "lead.*")
	hookB, secretB := e.addWebhook("--url", rb.srv.URL+"/b", "--organization-id", orgB, "--event-type", "lead.>")
	_, secretAll := e.addWebhook("--url", rall.srv.URL+"/all", "--event-type", "deal.created")
	e.startRelay()
	e.waitWebhookConsumer()

	aLead := e.publishFor(ctx, orgA, "lead.created")
	e.publishFor(ctx, orgA, "lead.status.changed") // lead.* is one token only
	e.publishFor(ctx, orgA, "deal.updated")
	bLead := e.publishFor(ctx, orgB, "lead.created")
	bDeep := e.publishFor(ctx, orgB, "lead.status.changed")
	aDeal := e.publishFor(ctx, orgA, "deal.created")
	bDeal := e.publishFor(ctx, orgB, "deal.created")
	e.waitProcessed(7, 60*time.Second)

	ids := func(r *hookReceiver) []string {
		var got []string
		for _, req := range r.requests() {
			got = append(got, req.header.Get("webhook-id"))
		}
		return got
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		return len(ra.requests()) >= 1 && len(rb.requests()) >= 2 && len(rall.requests()) >= 2,
			fmt.Sprintf("A got %v, B got %v, all got %v", ids(ra), ids(rb), ids(rall))
	})
	// Nothing else arrives: the deliveries recorded are the ones seen.
	eventually(t, 30*time.Second, func() (bool, string) {
		a, b := e.deliveryStatuses(hookA), e.deliveryStatuses(hookB)
		return a[aLead] == "delivered" && b[bLead] == "delivered" && b[bDeep] == "delivered",
			fmt.Sprintf("A %v, B %v", a, b)
	})
	assert.ElementsMatch(t, []string{aLead}, ids(ra), "org A, lead.*")
	assert.ElementsMatch(t, []string{bLead, bDeep}, ids(rb), "org B, lead.>")
	assert.ElementsMatch(t, []string{aDeal, bDeal}, ids(rall), "every organization, deal.created")
	assert.Len(t, e.deliveryStatuses(hookA), 1, "org A's endpoint got one delivery row, for org A's event")

	for _, c := range []struct {
		r      *hookReceiver
		secret string
	}{{ra, secretA}, {rb, secretB}, {rall, secretAll}} {
		for _, req := range c.r.requests() {
			verifySignature(t, c.secret, req)
			assert.Equal(t, "application/json", req.header.Get("Content-Type"))
			assert.True(t, strings.HasPrefix(req.header.Get("User-Agent"), "eventbus/"), req.header.Get("User-Agent"))
			var b body
			require.NoError(t, json.Unmarshal(req.body, &b), "the body is the event's JSON")
			assert.Equal(t, req.header.Get("webhook-id"), b.ID)
		}
	}
}

// An endpoint that fails twice and then answers is delivered on the third
// attempt; one that always fails ends failed after
// EVENTBUS_WEBHOOK_MAX_ATTEMPTS, with its last status; one that answers 410
// is disabled. None of them holds the others up.
func TestWebhookRetriesEndDeliveredOrFailed(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true", "EVENTBUS_WEBHOOK_RETRY_BASE=100ms", "EVENTBUS_WEBHOOK_MAX_ATTEMPTS=3"))
	ctx := t.Context()
	flaky := newHookReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	broken := newHookReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	gone := newHookReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	flakyID, _ := e.addWebhook("--url", flaky.srv.URL)
	brokenID, _ := e.addWebhook("--url", broken.srv.URL)
	goneID, _ := e.addWebhook("--url", gone.srv.URL)
	e.startRelay()
	e.waitWebhookConsumer()
	id := e.publish(ctx, "order.placed", "o-1", `{}`)

	eventually(t, 60*time.Second, func() (bool, string) {
		f, b, g := e.deliveryStatuses(flakyID)[id], e.deliveryStatuses(brokenID)[id], e.deliveryStatuses(goneID)[id]
		return f == "delivered" && b == "failed" && g == "failed", fmt.Sprintf("flaky %q, broken %q, gone %q", f, b, g)
	})
	var attempts, code int
	var lastErr string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT attempts, last_status_code FROM public.event_webhook_deliveries WHERE webhook_id = $1::uuid`, flakyID).Scan(&attempts, &code))
	assert.Equal(t, 3, attempts, "two failures, then delivered")
	assert.Equal(t, 200, code)
	require.NoError(t, e.db.QueryRow(ctx, `SELECT attempts, last_status_code, last_error FROM public.event_webhook_deliveries WHERE webhook_id = $1::uuid`, brokenID).Scan(&attempts, &code, &lastErr))
	assert.Equal(t, 3, attempts, "EVENTBUS_WEBHOOK_MAX_ATTEMPTS")
	assert.Equal(t, 500, code)
	assert.Contains(t, lastErr, "500")
	assert.Len(t, broken.requests(), 3)
	assert.Len(t, gone.requests(), 1, "410 is not retried")
	var enabled bool
	require.NoError(t, e.db.QueryRow(ctx, `SELECT enabled FROM public.event_webhooks WHERE id = $1::uuid`, goneID).Scan(&enabled))
	assert.False(t, enabled, "410 Gone disables the endpoint")
}

// Without EVENTBUS_WEBHOOK_ALLOW_PRIVATE an endpoint on loopback is never
// connected to: the attempt fails naming the refused address, and `webhook
// add` refuses such a URL up front.
func TestWebhookToLoopbackRefusedByDefault(t *testing.T) {
	t.Parallel()
	e := setup(t, withEnv("EVENTBUS_WEBHOOK_MAX_ATTEMPTS=1"))
	ctx := t.Context()
	r := newHookReceiver(t, nil)
	out, err := e.command("webhook", "add", "--url", r.srv.URL).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "not allowed")
	assert.Contains(t, string(out), "EVENTBUS_WEBHOOK_ALLOW_PRIVATE")

	// Added anyway (through SQL, as an admin could through PostgREST): the
	// deliverer refuses it at connect time.
	var hookID string
	require.NoError(t, e.db.QueryRow(ctx, `INSERT INTO public.event_webhooks (url) VALUES ($1) RETURNING id::text`, r.srv.URL).Scan(&hookID))
	e.startRelay()
	e.waitWebhookConsumer()
	id := e.publish(ctx, "order.placed", "o-1", `{}`)
	eventually(t, 60*time.Second, func() (bool, string) {
		st := e.deliveryStatuses(hookID)[id]
		return st == "failed", "delivery " + st
	})
	var lastErr string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT last_error FROM public.event_webhook_deliveries WHERE webhook_id = $1::uuid`, hookID).Scan(&lastErr))
	assert.Contains(t, lastErr, "not allowed")
	assert.Empty(t, r.requests(), "the receiver was never connected to")
}

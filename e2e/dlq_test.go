package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deadLetters reads the test stream's dead-letter stream.
func (e *env) deadLetters() []*nats.Msg {
	e.t.Helper()
	nc, err := nats.Connect(e.natsURL())
	require.NoError(e.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(e.t, err)
	s, err := js.Stream(e.t.Context(), e.stream+"_DLQ")
	if err != nil {
		return nil
	}
	info, err := s.Info(e.t.Context())
	require.NoError(e.t, err)
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(e.t.Context(), seq)
		if err != nil {
			continue
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}

// A failed event and a failed webhook delivery are copied to <STREAM>_DLQ
// with the contract's subjects and headers; `eventbus dlq list` shows them;
// `eventbus dlq redrive` hands the failed event back, and its next failure
// is a dead letter of its own.
func TestFailuresReachTheDeadLetterStream(t *testing.T) {
	t.Parallel()
	e := setup(t, withMaxPayload(16*1024),
		withEnv("EVENTBUS_MAX_RETRIES=1", "EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true", "EVENTBUS_WEBHOOK_MAX_ATTEMPTS=1"))
	ctx := t.Context()
	broken := newHookReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	hookID, _ := e.addWebhook("--url", broken.srv.URL, "--event-type", "order.placed")
	e.startRelay()
	e.waitWebhookConsumer()

	var tooLarge string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT public.publish_event('order.big', 'test', 'o-1',
		jsonb_build_object('blob', repeat('x', 40000)), '{}'::jsonb, NULL)::text`).Scan(&tooLarge))
	placed := e.publish(ctx, "order.placed", "o-2", `{"n":2}`)

	bySubject := func() map[string]*nats.Msg {
		got := map[string]*nats.Msg{}
		for _, m := range e.deadLetters() {
			got[m.Subject+" "+m.Header.Get("Nats-Msg-Id")] = m
		}
		return got
	}
	eventDLQ := "events_dlq.order.big " + tooLarge + ":failed:1"
	hookDLQ := "events_dlq.webhook.order.placed " + placed + ":" + hookID + ":failed:1"
	eventually(t, 60*time.Second, func() (bool, string) {
		got := bySubject()
		return got[eventDLQ] != nil && got[hookDLQ] != nil, fmt.Sprintf("dead letters: %v", keys(got))
	})
	got := bySubject()
	ev := got[eventDLQ]
	assert.Contains(t, ev.Header.Get("Eventbus-Error"), "max_payload")
	assert.Equal(t, "1", ev.Header.Get("Eventbus-Retry-Count"))
	assert.Equal(t, "true", ev.Header.Get("Eventbus-Payload-Omitted"), "the payload that did not fit is left out")
	var b body
	require.NoError(t, json.Unmarshal(ev.Data, &b))
	assert.Equal(t, tooLarge, b.ID)
	hook := got[hookDLQ]
	assert.Equal(t, hookID, hook.Header.Get("Eventbus-Webhook-Id"))
	assert.Equal(t, "HTTP 502", hook.Header.Get("Eventbus-Error"))
	require.NoError(t, json.Unmarshal(hook.Data, &b))
	assert.Equal(t, placed, b.ID, "the delivery's body")

	listed := e.run("dlq", "list", "--json")
	var letters []struct {
		Subject, EventID string
		RetryCount       int `json:"retry_count"`
	}
	require.NoError(t, json.Unmarshal([]byte(listed), &letters), listed)
	assert.Len(t, letters, 2, listed)

	out := e.run("dlq", "redrive", "--event-type", "order.big")
	assert.Contains(t, out, "1 failed events handed back")
	eventually(t, 60*time.Second, func() (bool, string) {
		return bySubject()["events_dlq.order.big "+tooLarge+":failed:2"] != nil, "the second failure's dead letter"
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

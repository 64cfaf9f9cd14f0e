package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/eventbus/eventbus/webhook"
	"github.com/nats-io/nats.go/jetstream"
)

// webhookRate is the rate of the webhooks scenario's latency measurement:
// the "p50/p99 commit → webhook received at 500 events/s".
const webhookRate = 500

// webhooksScenario measures what webhook delivery costs the relay and what
// it gives a receiver:
//
//   - the single-row burst with webhooks off (EVENTBUS_WEBHOOKS=false) and
//     on, with one endpoint subscribed to every event, so every event is
//     also fanned out, recorded in event_webhook_deliveries and POSTed: the
//     stream's delivery rate and the relay's CPU side by side, and how fast
//     the webhooks drain;
//   - single-row transactions paced at 500/s with the endpoint: commit →
//     stream and commit → webhook received, from the same events.
//
// The receiver is an HTTP server in this process that answers 204 at once.
func webhooksScenario(ctx context.Context, e *env, o options, rep *report) error {
	if err := truncate(ctx, e.pool); err != nil {
		return err
	}
	off, err := startRelayWith(ctx, e, "EVENTBUS_WEBHOOKS=false")
	if err != nil {
		return err
	}
	m, err := burst(ctx, e, o, single, relayStream, relayDeliverer(off))
	if err = stopWith(off, err); err != nil {
		return fmt.Errorf("webhooks off: %w", err)
	}
	rep.add("burst-webhooks-off", single, m)

	if err := dropWebhookConsumer(ctx, e); err != nil {
		return err
	}
	rcv, err := startReceiver()
	if err != nil {
		return err
	}
	defer rcv.close()
	id, err := addEndpoint(ctx, e, rcv.url)
	if err != nil {
		return err
	}
	on, err := startRelayWith(ctx, e, "EVENTBUS_WEBHOOKS=true", "EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true")
	if err != nil {
		return err
	}
	err = func() error {
		hooks := rcv.reset(false)
		started := time.Now()
		m, err := burst(ctx, e, o, single, relayStream, relayDeliverer(on))
		if err != nil {
			return fmt.Errorf("burst: %w", err)
		}
		rep.add("burst-webhooks-on", single, m)
		last, err := hooks.waitFor(ctx, m.Events, o.drainLimit)
		if err != nil {
			return fmt.Errorf("webhooks of the burst: %w", err)
		}
		// From just before the writers started (burst truncates and
		// subscribes first, a few ms) to the last webhook received.
		rep.add("webhooks-received", single, measurement{Events: m.Events, WriteRate: m.WriteRate,
			DeliveryRate: float64(m.Events) / last.Sub(started).Seconds(), DrainSeconds: last.Sub(started).Seconds() - o.duration.Seconds()})
		if err := truncate(ctx, e.pool); err != nil {
			return err
		}
		stream, hook, err := pacedWith(ctx, e, o, relayStream, webhookRate, relayDeliverer(on), rcv.reset(true))
		if err != nil {
			return fmt.Errorf("paced: %w", err)
		}
		rep.addLatency("relay, webhooks on: commit → stream", stream)
		rep.addLatency("relay, webhooks on: commit → webhook", hook)
		return nil
	}()
	if err = stopWith(on, err); err != nil {
		return fmt.Errorf("webhooks on: %w", err)
	}
	if err := removeEndpoint(ctx, e, id); err != nil {
		return err
	}
	// The bench's own statement, like truncate's: deliveries of truncated
	// events would only grow the table from run to run.
	if _, err := e.pool.Exec(ctx, "TRUNCATE public.event_webhook_deliveries"); err != nil {
		return fmt.Errorf("truncate event_webhook_deliveries: %w", err)
	}
	return dropSlot(ctx, e)
}

// dropWebhookConsumer deletes the deliverers' durable consumer. Every relay
// the other scenarios ran delivered webhooks (the default) and left the
// consumer where it stopped: after a backlog, hundreds of thousands of
// messages behind. The deliverer measured here would read through them
// first (none matches the endpoint, created later) and the webhooks' drain
// would measure that. A deliverer that creates the consumer starts at the
// oldest endpoint's creation, as a first endpoint's does.
func dropWebhookConsumer(ctx context.Context, e *env) error {
	c, err := e.js.Consumer(ctx, relayStream, webhook.DefaultConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("webhook consumer: %w", err)
	}
	e.log.Info("webhooks: dropping the deliverers' consumer left by earlier scenarios", "pending", c.CachedInfo().NumPending)
	if err := e.js.DeleteConsumer(ctx, relayStream, webhook.DefaultConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete webhook consumer: %w", err)
	}
	return nil
}

// receiver is the endpoint: it tallies each POST's body, by event id, into
// the tally of the current measurement.
type receiver struct {
	srv   *http.Server
	url   string
	tally atomic.Pointer[tally]
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/hook"}
	r.tally.Store(newTally(false))
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.tally.Load().add(body, "webhook "+req.Header.Get("webhook-id"), time.Now())
	w.WriteHeader(http.StatusNoContent)
}

// reset starts a new tally for the next measurement and returns it.
func (r *receiver) reset(timed bool) *tally {
	t := newTally(timed)
	r.tally.Store(t)
	return t
}

func (r *receiver) close() { _ = r.srv.Close() }

// addEndpoint registers url (on loopback) for every bench event type, as an
// operator would (`eventbus webhook add`), and returns its id.
func addEndpoint(ctx context.Context, e *env, url string) (string, error) {
	out, err := relayCommand(ctx, e, []string{"EVENTBUS_WEBHOOK_ALLOW_PRIVATE=true"}, "webhook", "add", "--url", url, "--event-type", "bench.>", "--description", "eventbus-bench")
	if err != nil {
		return "", err
	}
	id, _, _ := bytes.Cut(out, []byte("\n"))
	if len(id) == 0 {
		return "", errors.New("eventbus webhook add printed no id")
	}
	return string(id), nil
}

func removeEndpoint(ctx context.Context, e *env, id string) error {
	_, err := relayCommand(ctx, e, nil, "webhook", "remove", id)
	return err
}

// relayCommand runs an eventbus sub-command with the relay's environment and
// env and returns its standard output.
func relayCommand(ctx context.Context, e *env, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.relayBin, args...)
	cmd.Env = append(e.relayEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		sc := bufio.NewScanner(&stderr)
		var first string
		if sc.Scan() {
			first = sc.Text()
		}
		return nil, fmt.Errorf("eventbus %s: %w: %s", args[0], err, first)
	}
	return out, nil
}

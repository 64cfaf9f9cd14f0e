// Package webhook delivers the stream's events to HTTP endpoints, signed as
// Standard Webhooks (standardwebhooks.com) describes.
//
// Delivery runs from the stream, not from event_bus: a Deliverer reads
// <prefix>.> through one durable JetStream consumer, which every deliverer
// (in `eventbus run`, or alone in `eventbus deliver`) shares, so more
// deliverers share the work. For each message it writes one row per
// matching endpoint into public.event_webhook_deliveries (its
// organization's endpoints and those for every organization, whose
// event_types patterns match the type) and only then acks the message: from
// there on the table is the durable state. Workers take due rows with
// FOR UPDATE SKIP LOCKED and a lease (next_attempt_at moved past the
// attempt's timeout), so a deliverer killed mid-flight loses nothing: its
// rows come due again and are retried (at least once; webhook-id lets
// receivers dedupe).
//
// An attempt is a POST of the NATS message body with the webhook-id,
// webhook-timestamp and webhook-signature headers. A 2xx is delivered;
// 410 Gone disables the endpoint; anything else is retried with capped
// exponential backoff and jitter (Retry-After honoured) until the attempts
// are used up, and the delivery ends failed. Endpoints are cached and
// reloaded every few seconds, so changes to event_webhooks take effect
// within ReloadInterval.
//
// Targets on loopback, private, link-local and metadata addresses are
// refused at connect time (client.go) unless allowed.
package webhook

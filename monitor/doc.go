// Package monitor is the event bus monitor of the seed ("UI Components: Event
// Bus Monitor", and its hooks useEvents, usePublishEvent,
// useProcessPendingEvents, useEventStats), served by the relay itself: a JSON
// API under /api and the web page at /crm/events (embedded from web/), on the
// relay's HTTP listener.
//
// Endpoints (JSON in, JSON out; errors are {"error": "..."}, and a 500 is
// {"error": "internal error", "request_id": "..."}, its cause in the log line
// of that id):
//
//	GET  /api/events             newest first, filtered, keyset-paginated (cursor)
//	GET  /api/events/{id}        one event
//	POST /api/events             publish through public.publish_event
//	POST /api/events/process     public.process_pending_events ({"limit": n})
//	POST /api/events/{id}/replay republish one event (package replay)
//	GET  /api/stats              24 h counts by status, per minute for the last hour, the relay's state
//
// Access is for admins only, two ways. The bearer token EVENTBUS_ADMIN_TOKEN
// acts as the relay's own database connection and sees every organization.
// A Supabase user's JWT is accepted when it verifies (see verifier: HS256
// with EVENTBUS_JWT_SECRET, ES256 or RS256 with a key of EVENTBUS_JWKS_URL,
// kept fresh by keySet; exp, nbf, aud EVENTBUS_JWT_AUDIENCE and role
// authenticated checked) and its sub has a row in public.profiles with role
// 'admin'; every query of that request then runs in a transaction as the role
// authenticated, with request.jwt.claims set, so the row-level security of
// public.event_bus (not this package) keeps the admin inside their
// organization: another organization's events are invisible to every
// endpoint (404 on get and replay, absent from lists and counts).
//
// The SQL is outbox's: the monitor turns a request into an outbox.Filter or
// a call of an outbox function, runs it in the caller's transaction, and
// shapes the answer.
//
// The page and its assets are public (they hold no data); it asks for a token
// and sends it with every API call. Every answer forbids framing, MIME
// sniffing and Referer; the page's Content-Security-Policy allows its own
// script and style only.
package monitor

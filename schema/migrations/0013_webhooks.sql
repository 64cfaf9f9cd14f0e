-- Webhooks (CONTRACT.md v2, "Webhooks"): endpoints that receive the events
-- of their organization whose type matches a pattern, and the durable state
-- of every delivery.
--
--   * an organization's admins (public.profiles.role = 'admin') manage their
--     organization's endpoints, and see their deliveries; nobody else sees
--     them (other organizations, members who are not admins, anon);
--   * an endpoint for every organization (organization_id NULL) is for
--     service_role and the owner only;
--   * service_role has full access; the owner (the relay) bypasses RLS.
--
-- Delivery rows are written by the deliverer (the owner): one per (webhook,
-- event) — per (webhook, message) for a replayed event — so a redelivery of
-- the stream's message, or a second deliverer, finds the row and does not
-- deliver twice beyond at-least-once.

CREATE TABLE IF NOT EXISTS public.event_webhooks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid,
  url text NOT NULL,
  event_types text[] NOT NULL DEFAULT '{}',
  -- Generated when not given: 32 bytes from two gen_random_uuid() (the
  -- server's strong random source; 244 of the 256 bits are random), so an
  -- admin inserting through PostgREST gets a secret too.
  secret text NOT NULL DEFAULT ('whsec_' || encode(decode(
    replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''), 'hex'), 'base64')),
  enabled boolean NOT NULL DEFAULT true,
  description text,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- The secret before the last rotation, valid until previous_secret_until:
  -- deliveries are signed with both meanwhile (Standard Webhooks allows
  -- several signatures).
  previous_secret text,
  previous_secret_until timestamptz,
  CONSTRAINT event_webhooks_url_http CHECK (url ~* '^https?://'),
  CONSTRAINT event_webhooks_secret_form CHECK (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$')
);

COMMENT ON TABLE public.event_webhooks IS
  'eventbus: webhook endpoints; each receives the events of its organization (NULL: all) whose event_type matches one of event_types (NATS-style patterns; empty: all)';

CREATE TABLE IF NOT EXISTS public.event_webhook_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  webhook_id uuid NOT NULL REFERENCES public.event_webhooks (id) ON DELETE CASCADE,
  event_id uuid NOT NULL,
  -- The webhook-id: the event id, or a replay's fresh Nats-Msg-Id (a
  -- replayed event is delivered again, under that id).
  message_id text NOT NULL,
  -- Copied from the event: the worker needs them without reading event_bus
  -- (whose row may have been pruned) and RLS filters on organization_id.
  event_type text NOT NULL,
  organization_id uuid,
  body text NOT NULL, -- the NATS message body, byte for byte (jsonb would reformat it)
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  last_status_code integer,
  last_error text,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (webhook_id, message_id)
);

COMMENT ON TABLE public.event_webhook_deliveries IS
  'eventbus: one row per (webhook, event): pending until delivered (a 2xx) or failed (attempts used up, or the endpoint answered 410 Gone)';

-- The deliverer's queue: due pending deliveries, per endpoint, oldest
-- first (a claim takes a few of each endpoint's).
CREATE INDEX IF NOT EXISTS event_webhook_deliveries_due
  ON public.event_webhook_deliveries (webhook_id, next_attempt_at)
  WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS event_webhook_deliveries_webhook
  ON public.event_webhook_deliveries (webhook_id, created_at DESC);

-- Whether the calling Supabase user is an admin of organization org.
CREATE OR REPLACE FUNCTION public.eventbus_user_is_admin_of(org uuid)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT org IS NOT NULL AND EXISTS (
    SELECT 1 FROM public.profiles p
    WHERE p.id = auth.uid() AND p.organization_id = org AND p.role = 'admin')
$$;

COMMENT ON FUNCTION public.eventbus_user_is_admin_of(uuid) IS
  'eventbus: true when the calling user (auth.uid()) is an admin (profiles.role = ''admin'') of the organization; used by the webhook RLS policies';

REVOKE ALL ON FUNCTION public.eventbus_user_is_admin_of(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.eventbus_user_is_admin_of(uuid) TO authenticated, service_role;

ALTER TABLE public.event_webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.event_webhook_deliveries ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS "Admins manage their organization's webhooks" ON public.event_webhooks;
CREATE POLICY "Admins manage their organization's webhooks"
  ON public.event_webhooks
  FOR ALL
  TO authenticated
  USING (public.eventbus_user_is_admin_of(organization_id))
  WITH CHECK (public.eventbus_user_is_admin_of(organization_id));

DROP POLICY IF EXISTS "Service role has full access" ON public.event_webhooks;
CREATE POLICY "Service role has full access"
  ON public.event_webhooks
  FOR ALL
  TO service_role
  USING (true)
  WITH CHECK (true);

DROP POLICY IF EXISTS "Admins see their organization's deliveries" ON public.event_webhook_deliveries;
CREATE POLICY "Admins see their organization's deliveries"
  ON public.event_webhook_deliveries
  FOR SELECT
  TO authenticated
  USING (EXISTS (SELECT 1 FROM public.event_webhooks w
                 WHERE w.id = webhook_id))
;

DROP POLICY IF EXISTS "Service role has full access" ON public.event_webhook_deliveries;
CREATE POLICY "Service role has full access"
  ON public.event_webhook_deliveries
  FOR ALL
  TO service_role
  USING (true)
  WITH CHECK (true);

-- Admins manage endpoints (the policy decides which); deliveries are read
-- only, written by the deliverer.
REVOKE ALL ON public.event_webhooks FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.event_webhooks TO authenticated;
GRANT ALL ON public.event_webhooks TO service_role;
REVOKE ALL ON public.event_webhook_deliveries FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.event_webhook_deliveries TO authenticated;
GRANT ALL ON public.event_webhook_deliveries TO service_role;

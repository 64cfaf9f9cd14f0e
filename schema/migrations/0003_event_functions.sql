-- The event bus's SQL API: publish_event() and process_pending_events(), with
-- the seed's names, parameters and return types, so that callers of the seed
-- (supabase.rpc('publish_event', …), the monitor's "process pending" button)
-- keep working. CREATE OR REPLACE keeps each function's identity, owner and
-- existing grants; a seed database gets our bodies.
--
-- Every function here is SECURITY DEFINER. Their search_path is public then
-- pg_temp, pg_temp last so that a caller's temporary table cannot stand in for
-- public.profiles (the seed had search_path = public, which puts pg_temp
-- first); their bodies also name every relation with its schema.

-- The organizations of the calling Supabase user (auth.uid()), read with the
-- owner's rights so that the RLS policy on event_bus and the functions below
-- work whether or not the caller may read public.profiles itself. Empty when
-- the caller is no user or has no profile.
CREATE OR REPLACE FUNCTION public.eventbus_user_organization_ids()
RETURNS SETOF uuid
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
  SELECT p.organization_id
  FROM public.profiles p
  WHERE p.id = auth.uid()
    AND p.organization_id IS NOT NULL
$$;

COMMENT ON FUNCTION public.eventbus_user_organization_ids() IS
  'eventbus: organization ids of the calling user''s profile (auth.uid()); used by the event_bus RLS policy';

GRANT EXECUTE ON FUNCTION public.eventbus_user_organization_ids() TO authenticated, service_role;

CREATE OR REPLACE FUNCTION public.publish_event(
  p_event_type text,
  p_aggregate_type text,
  p_aggregate_id text,
  p_payload jsonb DEFAULT '{}'::jsonb,
  p_metadata jsonb DEFAULT '{}'::jsonb,
  p_organization_id uuid DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
-- Stores one event (status 'pending') and returns its id. The relay streams the
-- insert from the WAL once the caller's transaction commits; a rolled-back
-- transaction publishes nothing.
--
-- Tenant rule. When a Supabase user calls (auth.uid() is not NULL, which also
-- holds for the lead triggers firing in that user's session), the event belongs
-- to the user's organization, from public.profiles: a NULL p_organization_id
-- means that organization, any other organization is refused (42501), and a
-- user without a profile or without an organization cannot publish. Without a
-- user (service role, the relay's CLI, system jobs) p_organization_id is taken
-- as given. A NULL payload or metadata is stored as {}.
DECLARE
  v_uid uuid := auth.uid();
  v_org uuid := p_organization_id;
  v_user_org uuid;
  v_id uuid;
BEGIN
  IF v_uid IS NOT NULL THEN
    SELECT p.organization_id INTO v_user_org
    FROM public.profiles p
    WHERE p.id = v_uid;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'publish_event: user % has no profile', v_uid
        USING ERRCODE = '42501';
    END IF;
    IF v_user_org IS NULL THEN
      RAISE EXCEPTION 'publish_event: user % belongs to no organization', v_uid
        USING ERRCODE = '42501';
    END IF;
    IF v_org IS NULL THEN
      v_org := v_user_org;
    ELSIF v_org <> v_user_org THEN
      RAISE EXCEPTION 'publish_event: organization % is not the caller''s organization', v_org
        USING ERRCODE = '42501',
              HINT = 'Pass NULL as p_organization_id to publish into your own organization.';
    END IF;
  END IF;

  INSERT INTO public.event_bus
    (event_type, aggregate_type, aggregate_id, payload, metadata, organization_id, status)
  VALUES
    (p_event_type, p_aggregate_type, p_aggregate_id,
     coalesce(p_payload, '{}'::jsonb), coalesce(p_metadata, '{}'::jsonb), v_org, 'pending')
  RETURNING id INTO v_id;

  RETURN v_id;
END
$$;

COMMENT ON FUNCTION public.publish_event(text, text, text, jsonb, jsonb, uuid) IS
  'eventbus: store one event for the relay to publish to NATS JetStream; returns its id';

REVOKE EXECUTE ON FUNCTION public.publish_event(text, text, text, jsonb, jsonb, uuid) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.publish_event(text, text, text, jsonb, jsonb, uuid) TO authenticated, service_role;

CREATE OR REPLACE FUNCTION public.process_pending_events(p_limit integer DEFAULT 100)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
-- Redrive. With the eventbus relay this function no longer processes events:
-- the relay publishes every inserted event from the replication stream. It
-- hands events back to the running relay for another delivery attempt:
--
--   * up to p_limit rows, oldest first, that are 'failed', or 'pending' /
--     'processing' (leftovers of the seed's poller) for more than 5 seconds;
--     rows locked by someone else (the relay marking them) are skipped;
--   * 'failed' and 'processing' rows are set back to 'pending'; retry_count and
--     error_message stay as the history of earlier attempts;
--   * their ids go into transactional logical decoding messages,
--     pg_logical_emit_message(true, 'eventbus.redrive', '<id>,<id>,…'), at most
--     1000 ids per message. The running relay receives them in its replication
--     stream when this transaction commits and republishes those rows with
--     their plain Nats-Msg-Id (the event id), so an event that did reach the
--     stream is dropped by JetStream's duplicate window instead of delivered
--     twice.
--
-- Returns how many rows were handed back. A Supabase user (auth.uid() not
-- NULL) hands back rows of their own organization only. p_limit 0 returns 0;
-- NULL or negative is an error.
DECLARE
  v_chunk constant integer := 1000;
  v_uid uuid := auth.uid();
  v_ids uuid[];
  v_n integer;
  i integer;
BEGIN
  IF p_limit IS NULL OR p_limit < 0 THEN
    RAISE EXCEPTION 'process_pending_events: p_limit must be zero or positive, got %',
      coalesce(p_limit::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF p_limit = 0 THEN
    RETURN 0;
  END IF;

  SELECT coalesce(array_agg(s.id ORDER BY s.created_at, s.id), '{}')
  INTO v_ids
  FROM (
    SELECT e.id, e.created_at
    FROM public.event_bus e
    WHERE ((e.status = 'pending' AND e.created_at < now() - interval '5 seconds')
        OR e.status = 'failed'
        OR (e.status = 'processing' AND e.created_at < now() - interval '5 seconds'))
      AND (v_uid IS NULL
           OR e.organization_id IN (SELECT public.eventbus_user_organization_ids()))
    ORDER BY e.created_at, e.id
    LIMIT p_limit
    FOR UPDATE OF e SKIP LOCKED
  ) s;

  v_n := coalesce(array_length(v_ids, 1), 0);
  IF v_n = 0 THEN
    RETURN 0;
  END IF;

  UPDATE public.event_bus
  SET status = 'pending'
  WHERE id = ANY (v_ids)
    AND status IN ('failed', 'processing');

  FOR i IN 1 .. v_n BY v_chunk LOOP
    PERFORM pg_catalog.pg_logical_emit_message(
      true, 'eventbus.redrive', array_to_string(v_ids[i : i + v_chunk - 1], ','));
  END LOOP;

  RETURN v_n;
END
$$;

COMMENT ON FUNCTION public.process_pending_events(integer) IS
  'eventbus: hand up to p_limit stale pending or failed events back to the running relay (redrive); returns how many';

REVOKE EXECUTE ON FUNCTION public.process_pending_events(integer) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.process_pending_events(integer) TO authenticated, service_role;

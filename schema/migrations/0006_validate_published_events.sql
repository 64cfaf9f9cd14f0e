-- publish_event() validates what it stores, and the tenant rule also holds for
-- an `authenticated` session that carries no user id.
--
-- Validation. An event that publish_event() accepts can be delivered: its
-- event_type is a literal NATS subject (the relay publishes it to
-- <prefix>.<event_type>), its aggregate fields are non-empty single-line text
-- (they travel as NATS headers), its payload and metadata are JSON objects. A
-- bad argument raises invalid_parameter_value (22023) with a message that names
-- the argument and the problem, e.g.
--
--   publish_event: p_event_type "lead created" is not a valid event type: it contains " " ...
--
-- Rows that bypass publish_event() (direct inserts by the service role or the
-- owner) are not validated here: the relay marks a row it cannot publish
-- 'failed' with an error_message, and moves on.
--
-- Tenant rule. A session running as `authenticated` without a user id
-- (auth.uid() is NULL: a JWT without `sub`, or SET ROLE authenticated by hand)
-- is no longer taken for a trusted system caller: it cannot publish, and
-- process_pending_events() hands back nothing for it. Until now such a session
-- could publish into any organization and redrive every organization's events.
-- The invoking role is read from the `role` setting (what PostgREST sets with
-- SET ROLE; SECURITY DEFINER does not change it), else session_user.
--
-- search_path. Every function of the event bus now runs with
-- search_path = pg_catalog, public, pg_temp: built-ins first, explicitly, then
-- our schema, temporary objects last; the bodies name every relation with its
-- schema as before.
--
-- CREATE OR REPLACE keeps each function's signature, owner and grants, so the
-- seed's callers (supabase.rpc('publish_event', …), the lead triggers, the
-- monitor's "process pending" button) keep working unchanged.

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
SET search_path = pg_catalog, public, pg_temp
AS $$
-- Stores one event (status 'pending') and returns its id. The relay streams the
-- insert from the WAL once the caller's transaction commits; a rolled-back
-- transaction publishes nothing.
--
-- Input (22023 invalid_parameter_value otherwise):
--   * p_event_type: 1 to 255 characters, dot-separated tokens of ASCII letters,
--     digits, '_' and '-' (lead.created, payment-v2.completed); no empty token,
--     no space, '*' or '>';
--   * p_aggregate_type, p_aggregate_id: not NULL, not blank, no control
--     characters (line breaks would not survive a NATS header);
--   * p_payload, p_metadata: JSON objects; NULL is stored as {}.
--
-- Tenant rule. When a Supabase user calls (auth.uid() is not NULL, which also
-- holds for the lead triggers firing in that user's session), the event belongs
-- to the user's organization, from public.profiles: a NULL p_organization_id
-- means that organization, any other organization is refused (42501), and a
-- user without a profile or without an organization cannot publish. An
-- `authenticated` session without a user id cannot publish either (42501).
-- Other callers (service role, the relay's CLI, system jobs) pass
-- p_organization_id as they mean it.
DECLARE
  v_max_event_type constant integer := 255;
  v_uid uuid := auth.uid();
  v_role text := coalesce(nullif(current_setting('role', true), 'none'), session_user);
  v_org uuid := p_organization_id;
  v_user_org uuid;
  v_shown text; -- p_event_type for messages: quoted, shortened, control characters as '?'
  v_bad text;
  v_id uuid;
BEGIN
  -- event_type: a literal NATS subject.
  IF p_event_type IS NULL OR p_event_type = '' THEN
    RAISE EXCEPTION 'publish_event: p_event_type is empty'
      USING ERRCODE = '22023',
            HINT = 'Use dot-separated tokens of letters, digits, "_" and "-", e.g. lead.created.';
  END IF;
  IF length(p_event_type) > v_max_event_type THEN
    RAISE EXCEPTION 'publish_event: p_event_type is % characters long; at most % are allowed',
      length(p_event_type), v_max_event_type
      USING ERRCODE = '22023';
  END IF;
  IF p_event_type !~ '^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+)*$' THEN
    v_shown := '"' || regexp_replace(left(p_event_type, 80), '[[:cntrl:]]', '?', 'g')
      || CASE WHEN length(p_event_type) > 80 THEN '...' ELSE '' END || '"';
    v_bad := substring(p_event_type FROM '[^A-Za-z0-9_.-]');
    RAISE EXCEPTION 'publish_event: p_event_type % is not a valid event type: %',
      v_shown,
      CASE
        WHEN v_bad IS NOT NULL THEN format('it contains %s, which is not allowed',
          CASE WHEN v_bad = ' ' THEN 'a space'
               WHEN v_bad ~ '[[:space:][:cntrl:]]'
               THEN format('the character U+%s', upper(lpad(to_hex(ascii(v_bad)), 4, '0')))
               ELSE '"' || v_bad || '"' END)
        ELSE 'it has an empty token (a leading, trailing or double dot)'
      END
      USING ERRCODE = '22023',
            HINT = 'Use dot-separated tokens of letters, digits, "_" and "-", e.g. lead.created; no spaces, "*" or ">".';
  END IF;

  -- The aggregate: non-empty, single-line text.
  IF p_aggregate_type IS NULL OR btrim(p_aggregate_type) = '' THEN
    RAISE EXCEPTION 'publish_event: p_aggregate_type is empty'
      USING ERRCODE = '22023';
  END IF;
  IF p_aggregate_type ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'publish_event: p_aggregate_type contains a control character (such as a line break)'
      USING ERRCODE = '22023';
  END IF;
  IF p_aggregate_id IS NULL OR btrim(p_aggregate_id) = '' THEN
    RAISE EXCEPTION 'publish_event: p_aggregate_id is empty'
      USING ERRCODE = '22023';
  END IF;
  IF p_aggregate_id ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'publish_event: p_aggregate_id contains a control character (such as a line break)'
      USING ERRCODE = '22023';
  END IF;

  -- payload and metadata: JSON objects.
  IF p_payload IS NOT NULL AND jsonb_typeof(p_payload) <> 'object' THEN
    RAISE EXCEPTION 'publish_event: p_payload must be a JSON object, got %', jsonb_typeof(p_payload)
      USING ERRCODE = '22023';
  END IF;
  IF p_metadata IS NOT NULL AND jsonb_typeof(p_metadata) <> 'object' THEN
    RAISE EXCEPTION 'publish_event: p_metadata must be a JSON object, got %', jsonb_typeof(p_metadata)
      USING ERRCODE = '22023';
  END IF;

  -- The organization.
  IF v_uid IS NULL AND v_role = 'authenticated' THEN
    RAISE EXCEPTION 'publish_event: the caller is authenticated but has no user id (auth.uid() is NULL)'
      USING ERRCODE = '42501',
            HINT = 'Call with the JWT of a user (its sub claim) so that the event goes into that user''s organization.';
  END IF;
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

CREATE OR REPLACE FUNCTION public.process_pending_events(p_limit integer DEFAULT 100)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
-- Redrive; see 0003_event_functions.sql for the mechanism. Unchanged but for
-- the caller's scope: a Supabase user (auth.uid() not NULL) hands back rows of
-- their own organization only, an `authenticated` session without a user id
-- hands back nothing, other callers (service role, operators) any row.
DECLARE
  v_chunk constant integer := 1000;
  v_uid uuid := auth.uid();
  v_role text := coalesce(nullif(current_setting('role', true), 'none'), session_user);
  v_ids uuid[];
  v_n integer;
  i integer;
BEGIN
  IF p_limit IS NULL OR p_limit < 0 THEN
    RAISE EXCEPTION 'process_pending_events: p_limit must be zero or positive, got %',
      coalesce(p_limit::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF p_limit = 0 OR (v_uid IS NULL AND v_role = 'authenticated') THEN
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

ALTER FUNCTION public.eventbus_user_organization_ids() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION public.trigger_lead_created() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION public.trigger_lead_status_updated() SET search_path = pg_catalog, public, pg_temp;

-- The grants of 0003/0004, stated again: CREATE OR REPLACE kept them, and a
-- database adopted from the seed may have had EXECUTE granted more widely.
REVOKE EXECUTE ON FUNCTION public.publish_event(text, text, text, jsonb, jsonb, uuid) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.publish_event(text, text, text, jsonb, jsonb, uuid) TO authenticated, service_role;
REVOKE EXECUTE ON FUNCTION public.process_pending_events(integer) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.process_pending_events(integer) TO authenticated, service_role;
REVOKE EXECUTE ON FUNCTION public.trigger_lead_created() FROM PUBLIC, anon, authenticated, service_role;
REVOKE EXECUTE ON FUNCTION public.trigger_lead_status_updated() FROM PUBLIC, anon, authenticated, service_role;

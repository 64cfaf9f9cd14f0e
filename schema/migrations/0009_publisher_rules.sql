-- Who published an event, which event types are the database's own, and who
-- may redrive.
--
-- Until now any `authenticated` member could publish any event type into
-- their organization, lead.created included, with a payload that looked
-- exactly like the trigger's, and nothing recorded who; and any member could
-- redrive every failed event of their organization, as many as they liked.
--
-- published_by. publish_event() stamps the caller into the event's metadata:
-- when a Supabase user calls (auth.uid() is not NULL: a JWT with a sub, and
-- the lead triggers firing in that user's session), metadata.published_by is
-- that user's id, as text. Trusted callers without a user id (service_role,
-- the owner, the relay's CLI, system jobs) get no stamp: a consumer tells a
-- user's event from a system's by the key's presence. A published_by the
-- caller passes is always dropped, by anyone: the key is the database's.
--
-- Reserved event types. public.eventbus_reserved_event_types lists the types
-- only the database publishes (seeded with the lead triggers' lead.created
-- and lead.status_updated; add your own triggers' types). publish_event()
-- refuses them (42501, naming the type) to a Supabase user and to
-- `authenticated` / `anon` sessions; service_role and the owner may still
-- publish them (backfills, repairs). The triggers store through
-- public.eventbus_store_event(), which is what publish_event() did until now
-- (validation, tenant rule, insert) plus the stamp, and is nobody's API: no
-- role may execute it, it runs with its caller's rights (SECURITY INVOKER),
-- and only the definer functions, as the owner, call it.
--
-- Redrive. process_pending_events() is for an organization's admins
-- (public.profiles.role = 'admin' for auth.uid()), service_role and the
-- owner: another user, or an `authenticated` session without a user id, gets
-- 42501. An admin hands back their organization's events only, as before (the
-- function's own filter on eventbus_user_organization_ids(): it runs as the
-- owner, which RLS does not restrict), and at most 1000 per call: a larger
-- p_limit is taken as 1000. Trusted callers are not capped.
--
-- publish_event() and process_pending_events() keep their signatures, owner
-- and grants (CREATE OR REPLACE). Every function here runs with
-- search_path = pg_catalog, pg_temp (see 0008).

CREATE TABLE IF NOT EXISTS public.eventbus_reserved_event_types (
  event_type text PRIMARY KEY
);

COMMENT ON TABLE public.eventbus_reserved_event_types IS
  'eventbus: event types only the database (its triggers), service_role and the owner may publish; publish_event refuses them to users';

INSERT INTO public.eventbus_reserved_event_types (event_type)
VALUES ('lead.created'), ('lead.status_updated')
ON CONFLICT (event_type) DO NOTHING;

-- Supabase's default privileges grant the API roles everything on new tables.
REVOKE ALL ON public.eventbus_reserved_event_types FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.eventbus_reserved_event_types TO service_role;

CREATE OR REPLACE FUNCTION public.eventbus_store_event(
  p_event_type text,
  p_aggregate_type text,
  p_aggregate_id text,
  p_payload jsonb,
  p_metadata jsonb,
  p_organization_id uuid
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
-- Stores one event (status 'pending') and returns its id: publish_event()'s
-- rules but the reserved types, for publish_event() and the lead triggers.
--
-- Input (22023 invalid_parameter_value otherwise):
--   * p_event_type: 1 to 255 characters, dot-separated tokens of ASCII letters,
--     digits, '_' and '-' (lead.created, payment-v2.completed); no empty token,
--     no space, '*' or '>';
--   * p_aggregate_type, p_aggregate_id: not NULL, not blank, no control
--     characters (line breaks would not survive a NATS header);
--   * p_payload, p_metadata: JSON objects; NULL is stored as {}.
--
-- Tenant rule. When a Supabase user calls (auth.uid() is not NULL), the event
-- belongs to the user's organization, from public.profiles: a NULL
-- p_organization_id means that organization, any other organization is
-- refused (42501), and a user without a profile or without an organization
-- cannot publish. An `authenticated` session without a user id cannot publish
-- either (42501). Other callers pass p_organization_id as they mean it.
--
-- metadata.published_by: the user's id when a user calls; never what the
-- caller passed.
DECLARE
  v_max_event_type constant integer := 255;
  v_uid uuid := auth.uid();
  v_role text := coalesce(nullif(current_setting('role', true), 'none'), session_user);
  v_org uuid := p_organization_id;
  v_user_org uuid;
  v_metadata jsonb;
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

  -- Who published it.
  v_metadata := coalesce(p_metadata, '{}'::jsonb) - 'published_by'::text;
  IF v_uid IS NOT NULL THEN
    v_metadata := v_metadata || jsonb_build_object('published_by', v_uid::text);
  END IF;

  INSERT INTO public.event_bus
    (event_type, aggregate_type, aggregate_id, payload, metadata, organization_id, status)
  VALUES
    (p_event_type, p_aggregate_type, p_aggregate_id,
     coalesce(p_payload, '{}'::jsonb), v_metadata, v_org, 'pending')
  RETURNING id INTO v_id;

  RETURN v_id;
END
$$;

COMMENT ON FUNCTION public.eventbus_store_event(text, text, text, jsonb, jsonb, uuid) IS
  'eventbus internal: publish_event without the reserved types, for publish_event and the lead triggers; executable by nobody';

REVOKE EXECUTE ON FUNCTION public.eventbus_store_event(text, text, text, jsonb, jsonb, uuid)
  FROM PUBLIC, anon, authenticated, service_role;

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
SET search_path = pg_catalog, pg_temp
AS $$
-- Stores one event (status 'pending') and returns its id. The relay streams the
-- insert from the WAL once the caller's transaction commits; a rolled-back
-- transaction publishes nothing. The rules (input, tenant, published_by) are
-- public.eventbus_store_event()'s; here, a user, or an `authenticated` /
-- `anon` session, cannot publish a type of
-- public.eventbus_reserved_event_types (42501).
DECLARE
  v_role text := coalesce(nullif(current_setting('role', true), 'none'), session_user);
BEGIN
  IF (auth.uid() IS NOT NULL OR v_role IN ('authenticated', 'anon'))
     AND EXISTS (SELECT 1 FROM public.eventbus_reserved_event_types r WHERE r.event_type = p_event_type) THEN
    RAISE EXCEPTION 'publish_event: event type "%" is reserved: only the database''s triggers publish it', p_event_type
      USING ERRCODE = '42501',
            HINT = 'Publish an event type of your own; public.eventbus_reserved_event_types lists the reserved ones.';
  END IF;
  RETURN public.eventbus_store_event(p_event_type, p_aggregate_type, p_aggregate_id,
                                     p_payload, p_metadata, p_organization_id);
END
$$;

CREATE OR REPLACE FUNCTION public.process_pending_events(p_limit integer DEFAULT 100)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Redrive; see 0003_event_functions.sql for the mechanism. Who may call: an
-- organization's admin (profiles.role = 'admin'), who hands back rows of their
-- own organization only and at most 1000 per call (a larger p_limit is taken
-- as 1000); service_role, the owner and other trusted callers, any row, no
-- cap. Other users and `authenticated` sessions without a user id: 42501.
DECLARE
  v_chunk constant integer := 1000;
  v_max_user_limit constant integer := 1000;
  v_uid uuid := auth.uid();
  v_role text := coalesce(nullif(current_setting('role', true), 'none'), session_user);
  v_limit integer := p_limit;
  v_ids uuid[];
  v_n integer;
  i integer;
BEGIN
  IF v_uid IS NOT NULL THEN
    IF NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = v_uid AND p.role = 'admin') THEN
      RAISE EXCEPTION 'process_pending_events: user % is not an admin of an organization (profiles.role = ''admin'')', v_uid
        USING ERRCODE = '42501',
              HINT = 'Redriving events is for organization admins and the service role.';
    END IF;
    v_limit := least(p_limit, v_max_user_limit);
  ELSIF v_role IN ('authenticated', 'anon') THEN
    RAISE EXCEPTION 'process_pending_events: the caller is authenticated but has no user id (auth.uid() is NULL)'
      USING ERRCODE = '42501';
  END IF;
  IF p_limit IS NULL OR p_limit < 0 THEN
    RAISE EXCEPTION 'process_pending_events: p_limit must be zero or positive, got %',
      coalesce(p_limit::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF v_limit = 0 THEN
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
    LIMIT v_limit
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
  'eventbus: hand up to p_limit stale pending or failed events back to the running relay (redrive); for organization admins (at most 1000), service_role and the owner; returns how many';

-- The lead triggers store through eventbus_store_event(): their types are
-- reserved, and their metadata gets the stamp of the user who changed the lead.
CREATE OR REPLACE FUNCTION public.trigger_lead_created()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM public.eventbus_store_event(
    'lead.created',
    'lead',
    NEW.id::text,
    jsonb_build_object(
      'lead_id', NEW.id,
      'first_name', NEW.first_name,
      'last_name', NEW.last_name,
      'phone', NEW.phone,
      'status_id', NEW.status_id,
      'lead_source_id', NEW.lead_source_id,
      'organization_id', NEW.organization_id
    ),
    jsonb_build_object('trigger', 'insert'),
    NEW.organization_id
  );
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION public.trigger_lead_status_updated()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF OLD.status_id IS DISTINCT FROM NEW.status_id THEN
    PERFORM public.eventbus_store_event(
      'lead.status_updated',
      'lead',
      NEW.id::text,
      jsonb_build_object(
        'lead_id', NEW.id,
        'first_name', NEW.first_name,
        'last_name', NEW.last_name,
        'old_status_id', OLD.status_id,
        'new_status_id', NEW.status_id,
        'organization_id', NEW.organization_id
      ),
      jsonb_build_object('trigger', 'update'),
      NEW.organization_id
    );
  END IF;
  RETURN NEW;
END
$$;

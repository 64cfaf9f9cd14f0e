-- Scheduled events (CONTRACT.md v2, "Scheduled events").
--
-- Delayed events. An event whose metadata.deliver_at is an RFC 3339 time in
-- the future stays pending until then. The relay skips it when its insert
-- arrives from the WAL (the slot may move past it: the row, pending, is its
-- durable record), and a background service of the active relay hands it
-- back through the replication stream when it is due, as the redrive does.
-- The service finds due rows through the partial index below, which holds
-- only pending rows whose metadata has a deliver_at key: an ordinary insert
-- pays one jsonb key lookup (the index predicate) and nothing else.
--
-- Recurring events. public.event_schedules holds one row per schedule; the
-- active relay calls publish_event once per cron tick, guarded by last_run_at
-- in the same transaction.

-- The time metadata.deliver_at names, or NULL: when there is none, when it is
-- JSON null, or when it is not an RFC 3339 time with an offset in the form
-- the relay accepts (event.DeliverAt). It never raises, so a bad deliver_at
-- never fails the INSERT: the relay fails that event at once instead.
-- IMMUTABLE holds because the text must carry its offset (Z or ±hh:mm):
-- neither the TimeZone nor the DateStyle setting changes what it names.
CREATE OR REPLACE FUNCTION public.eventbus_deliver_at(p_metadata jsonb)
RETURNS timestamptz
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_text text := p_metadata ->> 'deliver_at';
BEGIN
  IF v_text IS NULL OR pg_catalog.jsonb_typeof(p_metadata -> 'deliver_at') <> 'string'
     OR v_text !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$' THEN
    RETURN NULL;
  END IF;
  RETURN v_text::timestamptz;
EXCEPTION WHEN OTHERS THEN
  -- A day that does not exist (2026-02-30) passes the pattern.
  RETURN NULL;
END
$$;

COMMENT ON FUNCTION public.eventbus_deliver_at(jsonb) IS
  'eventbus: metadata.deliver_at as a time (RFC 3339 with offset), NULL when absent or not such a time; indexes delayed events';

-- Delayed events waiting: pending rows with a deliver_at key, by due time.
CREATE INDEX IF NOT EXISTS event_bus_deliver_at_idx
  ON public.event_bus (public.eventbus_deliver_at(metadata))
  WHERE metadata ? 'deliver_at' AND (status = 'pending' OR status IS NULL);

-- process_pending_events() leaves delayed events that are not due alone
-- (they are not stale: they wait), and counts a due one as stale from its
-- deliver_at, not its created_at. Otherwise 0012's function.
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
    WHERE ((coalesce(e.status, 'pending') IN ('pending', 'processing')
            AND (e.created_at IS NULL OR e.created_at < pg_catalog.now() - interval '5 seconds')
            AND (NOT (e.metadata ? 'deliver_at')
                 OR coalesce(public.eventbus_deliver_at(e.metadata) < pg_catalog.now() - interval '5 seconds', true)))
        OR e.status = 'failed')
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

-- Recurring events: one row per schedule. The active relay publishes the
-- event of each tick (cron, five fields, in timezone or UTC) through
-- publish_event, with metadata.schedule = name and metadata.scheduled_for =
-- the tick, and moves last_run_at to the tick in the same transaction: a
-- tick is published once, whichever relay gets there. last_run_at starts at
-- the row's creation, so a new schedule fires from its next tick on.
CREATE TABLE IF NOT EXISTS public.event_schedules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  cron text NOT NULL,
  timezone text,
  event_type text NOT NULL,
  aggregate_type text NOT NULL,
  aggregate_id text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  organization_id uuid,
  enabled boolean NOT NULL DEFAULT true,
  last_run_at timestamptz DEFAULT now(),
  CONSTRAINT event_schedules_name_not_blank CHECK (btrim(name) <> ''),
  CONSTRAINT event_schedules_payload_object CHECK (jsonb_typeof(payload) = 'object'),
  CONSTRAINT event_schedules_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

COMMENT ON TABLE public.event_schedules IS
  'eventbus: recurring events; the active relay calls publish_event once per tick of cron (5 fields, in timezone or UTC), metadata.schedule = name, metadata.scheduled_for = the tick';

-- Like the webhooks: an organization's admins manage their organization's
-- schedules and nobody else sees them; a schedule without organization is
-- for service_role and the owner; the relay's role gets its own policy
-- (schema.GrantRelayRole).
ALTER TABLE public.event_schedules ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS "Admins manage their organization's schedules" ON public.event_schedules;
CREATE POLICY "Admins manage their organization's schedules"
  ON public.event_schedules
  FOR ALL
  TO authenticated
  USING (public.eventbus_user_is_admin_of(organization_id))
  WITH CHECK (public.eventbus_user_is_admin_of(organization_id));

DROP POLICY IF EXISTS "Service role has full access" ON public.event_schedules;
CREATE POLICY "Service role has full access"
  ON public.event_schedules
  FOR ALL
  TO service_role
  USING (true)
  WITH CHECK (true);

REVOKE ALL ON public.event_schedules FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.event_schedules TO authenticated;
GRANT ALL ON public.event_schedules TO service_role;

-- Fires one tick of a schedule: moves last_run_at to p_tick, only if it is
-- before it (the tick's idempotency key: whoever fires it first, once), and
-- publishes the schedule's event through publish_event in the same
-- transaction, with metadata.schedule = name and metadata.scheduled_for = the
-- tick (RFC 3339, UTC). fired is false when the tick was fired already (or
-- the schedule is gone or disabled). An event publish_event refuses (a bad
-- event type, a reserved one, an organization mismatch) is not retried: the
-- tick counts as fired, error says why, and the next tick tries again.
--
-- The relay's role executes this, never publish_event itself: it can publish
-- what the schedules say and nothing else. SECURITY DEFINER (the owner's
-- rights), so it checks the reserved event types itself: publish_event
-- exempts the owner, and a schedule may have been written by an admin.
CREATE OR REPLACE FUNCTION public.eventbus_fire_schedule(
  p_id uuid,
  p_tick timestamptz,
  OUT fired boolean,
  OUT event_id uuid,
  OUT error text
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s public.event_schedules%ROWTYPE;
BEGIN
  fired := false;
  IF p_tick IS NULL OR p_tick > pg_catalog.now() + interval '5 seconds' THEN
    RAISE EXCEPTION 'eventbus_fire_schedule: tick % is not due', coalesce(p_tick::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  UPDATE public.event_schedules
  SET last_run_at = p_tick
  WHERE id = p_id AND enabled AND (last_run_at IS NULL OR last_run_at < p_tick)
  RETURNING * INTO s;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  fired := true;
  IF EXISTS (SELECT 1 FROM public.eventbus_reserved_event_types r WHERE r.event_type = s.event_type) THEN
    error := pg_catalog.format('event type "%s" is reserved: only the database''s triggers publish it', s.event_type);
    RETURN;
  END IF;
  BEGIN
    event_id := public.publish_event(
      s.event_type, s.aggregate_type, s.aggregate_id, s.payload,
      s.metadata OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
        'schedule', s.name,
        'scheduled_for', pg_catalog.to_char(p_tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
      s.organization_id);
  EXCEPTION WHEN OTHERS THEN
    error := SQLERRM;
  END;
END
$$;

COMMENT ON FUNCTION public.eventbus_fire_schedule(uuid, timestamptz) IS
  'eventbus: publish the event of one tick of a schedule, once (last_run_at guard); for the relay';

REVOKE ALL ON FUNCTION public.eventbus_fire_schedule(uuid, timestamptz) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.eventbus_fire_schedule(uuid, timestamptz) TO service_role;

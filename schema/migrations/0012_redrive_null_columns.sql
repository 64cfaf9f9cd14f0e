-- A row whose status or created_at is NULL (the seed's columns are nullable)
-- is handed back by process_pending_events() like a pending one (0010 made a
-- NULL status pending everywhere else; the redrive still took only
-- status = 'pending' rows with a created_at older than 5 seconds). A NULL
-- created_at tells nothing of the row's age: it counts as stale, since a
-- redrive of a row still in flight only publishes it once more under the same
-- Nats-Msg-Id. Only the selection changes; the rest is 0009's function.
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
            AND (e.created_at IS NULL OR e.created_at < pg_catalog.now() - interval '5 seconds'))
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

COMMENT ON FUNCTION public.process_pending_events(integer) IS
  'eventbus: hand up to p_limit stale pending or failed events back to the running relay (redrive); for organization admins (at most 1000), service_role and the owner; returns how many';

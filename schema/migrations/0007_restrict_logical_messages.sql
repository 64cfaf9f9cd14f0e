-- Only trusted roles may write logical decoding messages into this database.
--
-- The relay treats a transactional message with prefix 'eventbus.redrive' as
-- an order to republish the events whose ids it carries (process_pending_events
-- and the relay's sweep write them). PostgreSQL lets every role call
-- pg_logical_emit_message() (EXECUTE is granted to PUBLIC and the function
-- checks nothing), so any role with a connection, `authenticated` and `anon`
-- included, could hand the relay other organizations' failed events, or feed
-- it malformed orders. Revoke it from PUBLIC:
--
--   * process_pending_events() keeps working for its callers: it runs as its
--     owner (SECURITY DEFINER);
--   * superusers are not affected; the relay's role, when it is not a
--     superuser, gets EXECUTE from `eventbus migrate` (EVENTBUS_RELAY_ROLE, see
--     schema.GrantRelayRole) for its heartbeat and redrive sweep;
--   * other software of this database that writes logical messages as a
--     non-superuser needs its own GRANT EXECUTE.
--
-- Only the owner of the function (the bootstrap superuser) or a superuser can
-- change its privileges. Where the migration runs as neither (Supabase's
-- `postgres` role), it leaves the function as it is and says so.
DO $$
DECLARE
  f record;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure AS sig,
           pg_catalog.pg_has_role(current_user, p.proowner, 'USAGE')
             OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) AS can_grant
    FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'pg_catalog'::regnamespace
      AND p.proname = 'pg_logical_emit_message'
  LOOP
    IF f.can_grant THEN
      EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, anon, authenticated', f.sig);
    ELSE
      -- REVOKE would only warn "no privileges could be revoked".
      RAISE NOTICE 'eventbus: % is not a superuser: EXECUTE on % stays granted to PUBLIC; any role can write eventbus.redrive messages',
        current_user, f.sig;
    END IF;
  END LOOP;
END
$$;

-- Who may touch the event bus's tables.
--
--   * authenticated (a Supabase user) reads the events of its own
--     organization, and writes only through publish_event() and
--     process_pending_events();
--   * anon has no access;
--   * service_role has full access (policy below; on Supabase it also has
--     BYPASSRLS);
--   * the table owner (the relay connects as the owner by default) bypasses RLS:
--     RLS is enabled, not forced.

ALTER TABLE public.event_bus ENABLE ROW LEVEL SECURITY;

-- The seed's write policies let any role with table privileges insert or
-- update any row; writes go through the functions now.
DROP POLICY IF EXISTS "System can insert events" ON public.event_bus;
DROP POLICY IF EXISTS "System can update events" ON public.event_bus;

-- The seed's read policy, same name and meaning. The profile lookup goes
-- through a SECURITY DEFINER function so that it works without granting
-- authenticated SELECT on public.profiles.
DROP POLICY IF EXISTS "Users can view events from their organization" ON public.event_bus;
CREATE POLICY "Users can view events from their organization"
  ON public.event_bus
  FOR SELECT
  USING (organization_id IN (SELECT public.eventbus_user_organization_ids()));

DROP POLICY IF EXISTS "Service role has full access" ON public.event_bus;
CREATE POLICY "Service role has full access"
  ON public.event_bus
  FOR ALL
  TO service_role
  USING (true)
  WITH CHECK (true);

REVOKE ALL ON public.event_bus FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.event_bus TO authenticated;
GRANT ALL ON public.event_bus TO service_role;

-- The relay's own bookkeeping: not for API users. (Supabase's default
-- privileges would otherwise have granted anon and authenticated everything on
-- these tables.)
REVOKE ALL ON public.eventbus_slot_state FROM PUBLIC, anon, authenticated;
GRANT ALL ON public.eventbus_slot_state TO service_role;
REVOKE ALL ON public.eventbus_schema_migrations FROM PUBLIC, anon, authenticated;

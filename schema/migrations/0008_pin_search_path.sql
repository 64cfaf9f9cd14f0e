-- The event bus's functions resolve names in pg_catalog only.
--
-- Until now they ran with search_path = pg_catalog, public, pg_temp (0006;
-- public, pg_temp before, and the seed's `SET search_path = public`). Listing
-- pg_catalog first does not keep public out: PostgreSQL takes the candidate
-- whose argument types match a call best wherever it sits on the path, so an
-- exact-typed function in public beats a polymorphic or variadic built-in in
-- pg_catalog. A role that may create in public (PUBLIC before PostgreSQL 15,
-- Supabase's API roles) could plant public.array_length(uuid[], integer),
-- public.array_to_string(uuid[], text), an array_agg(uuid) aggregate (all
-- three called by process_pending_events), public.format(text, text)
-- (publish_event's messages) or public.jsonb_build_object(text, text) and its
-- longer forms (the lead triggers), and have them run as these functions'
-- owner, the migrating superuser, whenever anyone published, redrove or
-- changed a lead.
--
-- Now every function of the event bus runs with search_path = pg_catalog,
-- pg_temp: an unqualified function, operator or type name means a built-in,
-- whatever is in public. Their bodies already name every relation and every
-- function outside pg_catalog with its schema (public.event_bus,
-- public.profiles, auth.uid(), public.publish_event, …), so only the setting
-- changes; pg_temp stays last, where a caller's temporary table can stand in
-- for no relation (every relation is qualified anyway).
--
-- ALTER FUNCTION keeps each function's body, owner and grants.
-- schema.Migrate also runs every migration with this search_path, so the DO
-- blocks of the migrations (format() as the migrating superuser in 0002 and
-- 0007) cannot be taken over either.

ALTER FUNCTION public.eventbus_user_organization_ids() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION public.publish_event(text, text, text, jsonb, jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION public.process_pending_events(integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION public.trigger_lead_created() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION public.trigger_lead_status_updated() SET search_path = pg_catalog, pg_temp;

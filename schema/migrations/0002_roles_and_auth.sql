-- What the event bus needs from Supabase, created on plain PostgreSQL and left
-- alone where Supabase (or an earlier install) already provides it: the API
-- roles, auth.uid(), and the profiles and leads tables.

-- The three API roles, NOLOGIN, only when missing. Roles are cluster-wide while
-- the migration advisory lock is per database: a migration of another database
-- of the same cluster may create them at the same moment, hence the handler.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- created concurrently by another database's migration
      END;
    END IF;
  END LOOP;
END
$$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'auth') THEN
    CREATE SCHEMA auth;
  END IF;
END
$$;

-- auth.uid(): the id of the Supabase user making the request, NULL when the
-- caller is not a user (service role, the relay, psql). Created only when it
-- does not exist: Supabase's own function is never replaced. The shim reads the
-- JWT claims the way PostgREST hands them over (request.jwt.claims, and the
-- older request.jwt.claim.sub), treating a missing or empty setting as NULL.
DO $$
BEGIN
  IF pg_catalog.to_regprocedure('auth.uid()') IS NULL THEN
    CREATE FUNCTION auth.uid() RETURNS uuid
      LANGUAGE sql STABLE
    AS $fn$
      SELECT nullif(coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
      ), '')::uuid
    $fn$;
    COMMENT ON FUNCTION auth.uid() IS
      'eventbus shim of Supabase''s auth.uid(): sub of the request.jwt.claims setting, NULL when unset';
  END IF;
END
$$;

-- On Supabase these grants exist already and the migrating role may not hold
-- them with grant option: do not fail there.
DO $$
BEGIN
  GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
  GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'eventbus: not granting on schema auth (%); assuming the platform manages it', SQLERRM;
END
$$;

-- The user -> organization mapping the tenant rules read. An application's own
-- profiles table (with more columns) is kept as it is.
CREATE TABLE IF NOT EXISTS public.profiles (
  id uuid PRIMARY KEY,
  organization_id uuid,
  role text
);

-- The table whose triggers publish lead.created and lead.status_updated.
CREATE TABLE IF NOT EXISTS public.leads (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  first_name text,
  last_name text,
  phone text,
  status_id uuid,
  lead_source_id uuid,
  organization_id uuid,
  created_at timestamptz DEFAULT now()
);

-- Event types (CONTRACT.md v2, "Event types: versions, schemas, a catalog"):
-- every version of an event type, each with an optional JSON Schema
-- (2020-12) of its payload. The highest version of a type is its current
-- one. Versions are added, never changed: a consumer that branches on
-- Eventbus-Event-Version relies on a version meaning one thing forever.
--
--   * every role granted SELECT reads the catalog (authenticated: the
--     monitor's users; the relay's role, see schema/relay_role.go);
--   * the owner and service_role write it (eventbus types set).
--
-- The relay keeps the compiled schemas in memory and follows changes
-- through NOTIFY eventbus_event_types (the trigger below), with a periodic
-- reload as a fallback (catalog/doc.go).

CREATE TABLE IF NOT EXISTS public.event_types (
  event_type text NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  schema jsonb,
  description text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_type, version),
  CONSTRAINT event_types_schema_object CHECK (schema IS NULL OR jsonb_typeof(schema) IN ('object', 'boolean'))
);

COMMENT ON TABLE public.event_types IS
  'eventbus: the versions of each event type, with the JSON Schema (2020-12) its payload must match; the highest version is current';

ALTER TABLE public.event_types ENABLE ROW LEVEL SECURITY;

-- The catalog is not per organization: whoever may SELECT reads every row.
DROP POLICY IF EXISTS "Event types are readable" ON public.event_types;
CREATE POLICY "Event types are readable"
  ON public.event_types
  FOR SELECT
  USING (true);

DROP POLICY IF EXISTS "Service role has full access" ON public.event_types;
CREATE POLICY "Service role has full access"
  ON public.event_types
  FOR ALL
  TO service_role
  USING (true)
  WITH CHECK (true);

REVOKE ALL ON public.event_types FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.event_types TO authenticated;
GRANT ALL ON public.event_types TO service_role;

-- Tells running relays that the catalog changed; they reload it. One
-- notification per statement, with no payload: a reload reads everything.
CREATE OR REPLACE FUNCTION public.eventbus_event_types_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pg_catalog.pg_notify('eventbus_event_types', '');
  RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION public.eventbus_event_types_changed() FROM PUBLIC, anon, authenticated;

DROP TRIGGER IF EXISTS eventbus_event_types_changed ON public.event_types;
CREATE TRIGGER eventbus_event_types_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.event_types
  FOR EACH STATEMENT
  EXECUTE FUNCTION public.eventbus_event_types_changed();

-- The lead types of 0004_lead_triggers.sql, version 1: their payloads as the
-- triggers build them, each key with its type (a column of public.leads that
-- may be NULL may be null). Lenient on purpose: no key is required, ids are
-- not checked to be UUIDs, other keys are allowed, so lead events that other
-- writers publish by hand (publish_event('lead.created', …) with a payload of
-- their own, as before this migration) keep flowing; a key of the wrong type
-- is refused. A stricter contract is a new version (eventbus types set).
INSERT INTO public.event_types (event_type, version, schema, description) VALUES
('lead.created', 1, $json${
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "lead.created",
  "type": "object",
  "properties": {
    "lead_id": {"type": "string"},
    "first_name": {"type": ["string", "null"]},
    "last_name": {"type": ["string", "null"]},
    "phone": {"type": ["string", "null"]},
    "status_id": {"type": ["string", "null"]},
    "lead_source_id": {"type": ["string", "null"]},
    "organization_id": {"type": ["string", "null"]}
  }
}$json$, 'A lead was inserted into public.leads (trigger on_lead_created)'),
('lead.status_updated', 1, $json${
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "lead.status_updated",
  "type": "object",
  "properties": {
    "lead_id": {"type": "string"},
    "first_name": {"type": ["string", "null"]},
    "last_name": {"type": ["string", "null"]},
    "old_status_id": {"type": ["string", "null"]},
    "new_status_id": {"type": ["string", "null"]},
    "organization_id": {"type": ["string", "null"]}
  }
}$json$, 'The status_id of a lead changed (trigger on_lead_status_updated)')
ON CONFLICT (event_type, version) DO NOTHING;

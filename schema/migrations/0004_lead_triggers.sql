-- The seed's lead triggers, with the seed's names, events and payloads. DROP
-- TRIGGER IF EXISTS + CREATE TRIGGER replaces a seed's trigger of the same name
-- (PostgreSQL 14 has CREATE OR REPLACE TRIGGER, but this reads the same on
-- every version and makes the definition ours).
--
-- The triggers fire in the session that changed the lead, so publish_event()'s
-- tenant rule applies to a Supabase user changing a lead of another
-- organization: the change fails.

CREATE OR REPLACE FUNCTION public.trigger_lead_created()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
  PERFORM public.publish_event(
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
SET search_path = public, pg_temp
AS $$
BEGIN
  IF OLD.status_id IS DISTINCT FROM NEW.status_id THEN
    PERFORM public.publish_event(
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

-- Trigger functions cannot be called directly; keep them out of the API anyway
-- (Supabase's default privileges grant EXECUTE on new functions to its roles).
-- Firing a trigger does not check EXECUTE of the session's role.
REVOKE EXECUTE ON FUNCTION public.trigger_lead_created() FROM PUBLIC, anon, authenticated;
REVOKE EXECUTE ON FUNCTION public.trigger_lead_status_updated() FROM PUBLIC, anon, authenticated;

DROP TRIGGER IF EXISTS on_lead_created ON public.leads;
CREATE TRIGGER on_lead_created
  AFTER INSERT ON public.leads
  FOR EACH ROW
  EXECUTE FUNCTION public.trigger_lead_created();

DROP TRIGGER IF EXISTS on_lead_status_updated ON public.leads;
CREATE TRIGGER on_lead_status_updated
  AFTER UPDATE ON public.leads
  FOR EACH ROW
  EXECUTE FUNCTION public.trigger_lead_status_updated();

-- A database running the seed's event bus (/work/shared/seed/event-bus.md) on
-- Supabase: auth.uid() as Supabase defines it, an application's profiles and
-- leads, the seed's event_bus with its three policies, its functions and
-- triggers. Tests load it before `eventbus migrate` to check the adoption.
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

CREATE TABLE public.profiles (
  id uuid PRIMARY KEY,
  organization_id uuid,
  role text,
  full_name text
);

CREATE TABLE public.leads (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  first_name text,
  last_name text,
  phone text,
  email text,
  status_id uuid,
  lead_source_id uuid,
  organization_id uuid,
  created_at timestamptz DEFAULT now()
);

CREATE TABLE public.event_bus (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  event_type TEXT NOT NULL,
  aggregate_type TEXT NOT NULL,
  aggregate_id TEXT NOT NULL,
  payload JSONB DEFAULT '{}'::jsonb,
  metadata JSONB DEFAULT '{}'::jsonb,
  organization_id UUID,
  status TEXT DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'processed', 'failed')),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now(),
  processed_at TIMESTAMP WITH TIME ZONE,
  retry_count INTEGER DEFAULT 0,
  error_message TEXT
);

ALTER TABLE public.event_bus ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Users can view events from their organization"
  ON public.event_bus
  FOR SELECT
  USING (organization_id IN (
    SELECT profiles.organization_id
    FROM profiles
    WHERE profiles.id = auth.uid()
  ));

CREATE POLICY "System can insert events"
  ON public.event_bus
  FOR INSERT
  WITH CHECK (true);

CREATE POLICY "System can update events"
  ON public.event_bus
  FOR UPDATE
  USING (true);

CREATE FUNCTION public.publish_event(
  p_event_type TEXT,
  p_aggregate_type TEXT,
  p_aggregate_id TEXT,
  p_payload JSONB DEFAULT '{}'::jsonb,
  p_metadata JSONB DEFAULT '{}'::jsonb,
  p_organization_id UUID DEFAULT NULL
) RETURNS UUID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  v_event_id UUID;
BEGIN
  INSERT INTO event_bus (event_type, aggregate_type, aggregate_id, payload, metadata, organization_id)
  VALUES (p_event_type, p_aggregate_type, p_aggregate_id, p_payload, p_metadata, p_organization_id)
  RETURNING id INTO v_event_id;
  RETURN v_event_id;
END;
$$;

CREATE FUNCTION public.process_pending_events(p_limit INTEGER DEFAULT 100) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  v_event RECORD;
  v_count INTEGER := 0;
BEGIN
  FOR v_event IN
    SELECT * FROM event_bus WHERE status = 'pending' ORDER BY created_at LIMIT p_limit FOR UPDATE SKIP LOCKED
  LOOP
    UPDATE event_bus SET status = 'processing' WHERE id = v_event.id;
    UPDATE event_bus SET status = 'processed', processed_at = now() WHERE id = v_event.id;
    v_count := v_count + 1;
  END LOOP;
  RETURN v_count;
END;
$$;

CREATE FUNCTION public.trigger_lead_created() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  PERFORM publish_event('lead.created', 'lead', NEW.id::text,
    jsonb_build_object('lead_id', NEW.id, 'first_name', NEW.first_name, 'last_name', NEW.last_name,
      'phone', NEW.phone, 'status_id', NEW.status_id, 'lead_source_id', NEW.lead_source_id,
      'organization_id', NEW.organization_id),
    jsonb_build_object('trigger', 'insert'), NEW.organization_id);
  RETURN NEW;
END;
$$;

CREATE FUNCTION public.trigger_lead_status_updated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF OLD.status_id IS DISTINCT FROM NEW.status_id THEN
    PERFORM publish_event('lead.status_updated', 'lead', NEW.id::text,
      jsonb_build_object('lead_id', NEW.id, 'first_name', NEW.first_name, 'last_name', NEW.last_name,
        'old_status_id', OLD.status_id, 'new_status_id', NEW.status_id,
        'organization_id', NEW.organization_id),
      jsonb_build_object('trigger', 'update'), NEW.organization_id);
  END IF;
  RETURN NEW;
END;
$$;

CREATE TRIGGER on_lead_created
  AFTER INSERT ON public.leads
  FOR EACH ROW
  EXECUTE FUNCTION public.trigger_lead_created();

CREATE TRIGGER on_lead_status_updated
  AFTER UPDATE ON public.leads
  FOR EACH ROW
  EXECUTE FUNCTION public.trigger_lead_status_updated();

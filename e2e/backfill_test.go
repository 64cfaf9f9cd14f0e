package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRowsFromBeforeTheFirstRunAreDelivered(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()

	const n = 50
	ids := make([]string, 0, n)
	for i := range n {
		ids = append(ids, e.publish(ctx, "order.placed", fmt.Sprintf("order-%d", i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	var slots int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&slots))
	require.Zero(t, slots, "no slot before the first run")

	e.startRelay()
	e.requireDeliveredOnce(ids, 60*time.Second)
	require.Equal(t, n, e.streamCount())
}

// seedSQL is the seed's event bus as /work/shared/seed/event-bus.md shows it,
// on a database that has Supabase's auth.uid() (the seed's read policy calls
// it) and the application's profiles and leads tables.
const seedSQL = `
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
`

// seedHistorySQL gives the seed database its history: 5 leads and 3 direct
// events, of which the seed's poller processed the 3 oldest, and one event
// that failed. That leaves 5 pending.
const seedHistorySQL = `
INSERT INTO public.leads (first_name, last_name, phone, status_id, organization_id)
SELECT 'Lead', g::text, '+7999000000' || g, gen_random_uuid(), 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
FROM generate_series(1, 5) g;
SELECT public.publish_event('payment.completed', 'payment', 'p-' || g, jsonb_build_object('n', g), '{}', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')
FROM generate_series(1, 3) g;
UPDATE public.event_bus SET created_at = created_at - interval '1 day';
SELECT public.process_pending_events(3);
INSERT INTO public.event_bus (event_type, aggregate_type, aggregate_id, organization_id, status, retry_count, error_message, created_at)
VALUES ('payment.failed', 'payment', 'p-9', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'failed', 3, 'handler error', now() - interval '1 day');
`

func TestMigrateAndRunAdoptSeedDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t, withSQLBeforeMigrate(seedSQL+seedHistorySQL))
	ctx := t.Context()

	type row struct {
		ID          string
		Status      string
		ProcessedAt *time.Time
	}
	readRows := func() map[string]row {
		rows, err := e.db.Query(ctx, `SELECT id::text, status, processed_at FROM public.event_bus`)
		require.NoError(t, err)
		all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		require.NoError(t, err)
		byID := make(map[string]row, len(all))
		for _, r := range all {
			byID[r.ID] = r
		}
		return byID
	}
	before := readRows()
	require.Equal(t, map[string]int{"pending": 5, "processed": 3, "failed": 1}, e.statusCounts(), "the seed's history, migrated")
	var pending []string
	for id, r := range before {
		if r.Status == "pending" {
			pending = append(pending, id)
		} else if r.Status == "processed" {
			require.NotNil(t, r.ProcessedAt, "the seed set processed_at")
		}
	}

	var policies []string
	rows, err := e.db.Query(ctx, `SELECT policyname || ' (' || cmd || ' to ' || array_to_string(roles, ',') || ')'
		FROM pg_policies WHERE schemaname = 'public' AND tablename = 'event_bus'
		AND cmd <> 'SELECT' AND roles <> '{service_role}'`)
	require.NoError(t, err)
	policies, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Empty(t, policies, "no write policy for anyone but service_role: the seed's permissive ones are gone")
	var seedPolicies int
	require.NoError(t, e.db.QueryRow(ctx, `SELECT count(*) FROM pg_policies WHERE schemaname = 'public' AND tablename = 'event_bus'
		AND policyname IN ('System can insert events', 'System can update events')`).Scan(&seedPolicies))
	assert.Zero(t, seedPolicies, "the seed's insert and update policies are dropped")

	e.startRelay()
	e.waitProcessed(8, 60*time.Second)

	msgs := e.streamMessages()
	var published []string
	for _, m := range msgs {
		published = append(published, m.Body.ID)
	}
	require.ElementsMatch(t, pending, published, "exactly the pending rows are published")

	after := readRows()
	require.Len(t, after, len(before), "no row lost")
	for id, b := range before {
		a := after[id]
		switch b.Status {
		case "pending":
			assert.Equal(t, "processed", a.Status, "event %s", id)
			assert.NotNil(t, a.ProcessedAt, "event %s", id)
		case "processed":
			assert.Equal(t, b, a, "an event the seed processed is left as it was")
		case "failed":
			assert.Equal(t, "failed", a.Status, "a failed event stays failed until redriven")
		}
	}

	id := e.publish(ctx, "payment.completed", "p-after", `{"after":"migrate"}`)
	e.waitProcessed(9, 30*time.Second)
	msgs = e.streamMessages()
	require.Len(t, msgs, 6)
	assert.Equal(t, id, msgs[5].Body.ID, "publish_event still works after adoption")
	assert.JSONEq(t, `{"after":"migrate"}`, string(msgs[5].Body.Payload))
}

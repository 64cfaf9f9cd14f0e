-- The outbox table, exactly as the seed defined it, plus the indexes the relay,
-- the redrive function and the monitor need.
--
-- On a database that already runs the seed, CREATE TABLE IF NOT EXISTS leaves
-- the existing table and its rows untouched; only the indexes are added.
-- CREATE INDEX (not CONCURRENTLY: migrations run in a transaction) holds a SHARE
-- lock on event_bus while it builds, which blocks inserts for that time.

CREATE TABLE IF NOT EXISTS public.event_bus (
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

-- Indexes and the relay's status updates.
--
-- The relay updates status, processed_at and, on errors, retry_count and
-- error_message of every event it publishes. None of those columns is a key
-- column of any index here, so those updates never have to change an index key.
-- Be aware though that PostgreSQL treats a column referenced by a partial
-- index's WHERE predicate like an indexed column when deciding whether an
-- update can be HOT: because the three partial indexes below mention status,
-- a status change is never a HOT update; the new row version gets entries in
-- the primary key and the two created_at indexes (not in the partial index of
-- the status it left, since the new version no longer matches it). This is the
-- price of keeping the pending/failed lookups small and independent of the
-- table's size; the alternative, no index on status at all, would make every
-- backfill and every process_pending_events() call scan the whole table.
-- fillfactor 90 leaves room on each page so that the new version of a row just
-- marked usually stays on the same heap page as the old one.

-- Backfill of a new slot (all pending rows, oldest first) and redrive of stale
-- pending rows.
CREATE INDEX IF NOT EXISTS event_bus_pending_created_at_idx
  ON public.event_bus (created_at) WHERE status = 'pending';

-- Redrive of failed rows.
CREATE INDEX IF NOT EXISTS event_bus_failed_created_at_idx
  ON public.event_bus (created_at) WHERE status = 'failed';

-- Redrive of rows the seed's poller left in 'processing'; the relay itself never
-- writes that status, so this index stays (nearly) empty. It lets the planner
-- answer process_pending_events()'s three-way OR with index scans only.
CREATE INDEX IF NOT EXISTS event_bus_processing_created_at_idx
  ON public.event_bus (created_at) WHERE status = 'processing';

-- The monitor: latest events across the table.
CREATE INDEX IF NOT EXISTS event_bus_created_at_idx
  ON public.event_bus (created_at DESC);

-- Listing under RLS: latest events of one organization.
CREATE INDEX IF NOT EXISTS event_bus_organization_id_created_at_idx
  ON public.event_bus (organization_id, created_at DESC);

ALTER TABLE public.event_bus SET (fillfactor = 90);

-- The relay records here that the backfill of a replication slot it created has
-- completed, so that a restart between slot creation and the end of the backfill
-- backfills again instead of skipping rows.
CREATE TABLE IF NOT EXISTS public.eventbus_slot_state (
  slot_name text PRIMARY KEY,
  backfilled_at timestamptz
);

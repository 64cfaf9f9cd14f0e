-- The WAL timeline a slot's backfill state was last recorded on. A standby
-- promoted in a failover starts a new timeline, and its synchronized copy of
-- a failover slot may already be past events whose processed marks were lost
-- with the old primary: the slot never streams those again. A relay that
-- finds a timeline other than the recorded one publishes the pending rows
-- again (a backfill); NULL (recorded before this migration) is taken as the
-- current timeline.
ALTER TABLE public.eventbus_slot_state ADD COLUMN IF NOT EXISTS timeline integer;

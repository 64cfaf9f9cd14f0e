-- A row whose status is NULL (the seed's column is nullable; its default is
-- 'pending') is an event still to deliver, like a pending one: the stream
-- publishes it, and the backfill, the redrive sweep and the backlog gauges
-- count it as pending. This index lets them find such rows without a scan;
-- it holds only rows with a NULL status, so it is (nearly) always empty and
-- costs inserts nothing but the predicate's test.
CREATE INDEX IF NOT EXISTS event_bus_status_null_idx
  ON public.event_bus (created_at) WHERE status IS NULL;

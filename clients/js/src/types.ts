/** The status of an event_bus row. */
export type EventStatus = 'pending' | 'processing' | 'processed' | 'failed';

/** JSON object, as payload and metadata are. */
export type JsonObject = { [key: string]: unknown };

/** An event_bus row as GET /api/events shows it (the seed's table). */
export interface EventBusEvent {
  id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  organization_id: string | null;
  payload: JsonObject;
  metadata: JsonObject;
  status: EventStatus;
  /** RFC 3339, UTC; null only for a row written with a NULL created_at. */
  created_at: string | null;
  processed_at: string | null;
  retry_count: number;
  error_message: string | null;
}

/** The filters of useEvents (the seed's three) and of EventBusClient.list. */
export interface EventFilters {
  status?: EventStatus;
  event_type?: string;
  aggregate_type?: string;
  /** Events whose aggregate_id starts with this. */
  aggregate_id?: string;
  organization_id?: string;
  /** Events whose payload contains this object (jsonb @>). */
  payload?: JsonObject;
  /** Text found in event_type, aggregate_id or error_message. */
  q?: string;
  /** RFC 3339 time or Date: events created at or after it. */
  since?: string | Date;
  /** RFC 3339 time or Date: events created before it. */
  until?: string | Date;
  /** Page size, 1 to 500; the relay's default is 100. */
  limit?: number;
  /** next_cursor of the previous page. */
  cursor?: string;
}

/** One page of GET /api/events, newest first. */
export interface EventPage {
  events: EventBusEvent[];
  /** Pass as cursor for the next (older) page; null on the last. */
  next_cursor: string | null;
  /** On the first page only (no cursor): how many events match, at most 1,000. */
  matched?: number;
  /** True when there are more than matched. */
  matched_capped?: boolean;
}

/** usePublishEvent's argument: publish_event's parameters without the p_. */
export interface PublishEventInput {
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  payload?: JsonObject;
  metadata?: JsonObject;
  /** Defaults to none; RLS decides whether the caller may publish for it. */
  organization_id?: string | null;
}

/** useEventStats's data: counts by status over the last 24 hours. */
export interface EventStats {
  pending: number;
  processing: number;
  processed: number;
  failed: number;
  total: number;
}

/** Counts of one minute of the last hour. */
export interface MinuteCounts {
  minute: string;
  pending: number;
  processing: number;
  processed: number;
  failed: number;
}

/** The relay's state, as GET /api/stats reports it. */
export interface RelayState {
  slot: string;
  slot_active: boolean;
  lag_bytes: number | null;
  lag_seconds: number | null;
  state: 'active' | 'standby' | 'stopped';
  nats_connected: boolean;
}

/** GET /api/stats in full: the seed's counts, per minute for the last hour, and the relay. */
export interface StatsResponse extends EventStats {
  per_minute: MinuteCounts[];
  relay: RelayState;
}

/** The windows of GET /api/analytics. */
export type AnalyticsWindow = '1h' | '24h' | '7d' | '30d';

/** Counts by status, and their sum. */
export interface StatusCounts {
  pending: number;
  processing: number;
  processed: number;
  failed: number;
  total: number;
}

/**
 * GET /api/analytics?window=1h|24h|7d|30d (CONTRACT.md v2, "Search and
 * analytics"), under the caller's RLS: per event type and time bucket,
 * counts by status; the failure rate (failed / (processed + failed));
 * created → processed latency; the ten busiest aggregates and organizations.
 */
export interface Analytics {
  window: AnalyticsWindow;
  /** RFC 3339: the window's start and end. */
  since: string;
  until: string;
  /** Each bucket's length: 60 (1h), 3600 (24h), 21600 (7d), 86400 (30d). */
  bucket_seconds: number;
  /** Oldest first; start is RFC 3339. */
  buckets: Array<{ start: string; types: Array<{ event_type: string } & StatusCounts> }>;
  /** Per event type over the window, busiest first. */
  event_types: Array<{ event_type: string; failure_rate: number } & StatusCounts>;
  totals: StatusCounts;
  failure_rate: number;
  /** Milliseconds, over the processed events of the window. */
  latency_ms: { count: number; p50: number; p95: number; p99: number };
  busiest_aggregates: Array<{ aggregate_type: string; aggregate_id: string; count: number }>;
  /** organization_id null: the events without one. */
  busiest_organizations: Array<{ organization_id: string | null; count: number }>;
}

/** A webhook endpoint (public.event_webhooks). secret is shown only when created. */
export interface Webhook {
  id: string;
  /** Absent: every organization's events. */
  organization_id?: string;
  url: string;
  /** null or empty: every type. */
  event_types: string[] | null;
  secret?: string;
  enabled: boolean;
  description?: string;
  created_at: string;
}

/** POST /api/webhooks. */
export interface WebhookInput {
  url: string;
  /** NATS-style patterns over event_type: lead.created, lead.*, lead.>; none: every type. */
  event_types?: string[];
  organization_id?: string;
  /** whsec_<base64>; generated when not given. */
  secret?: string;
  description?: string;
  enabled?: boolean;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One (webhook, event) delivery (public.event_webhook_deliveries). */
export interface WebhookDelivery {
  id: string;
  webhook_id: string;
  event_id: string;
  message_id: string;
  event_type: string;
  organization_id?: string;
  status: DeliveryStatus;
  attempts: number;
  /** Absent until an endpoint answered. */
  last_status_code?: number;
  last_error?: string;
  next_attempt_at: string;
  delivered_at?: string;
  created_at: string;
}

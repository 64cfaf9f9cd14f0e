/**
 * EventBusClient: the relay's HTTP API (/api, see the repository's README,
 * "HTTP API") as typed methods, signed in with a user's JWT. It has no
 * dependency: fetch is the platform's (or the one given). The React hooks
 * (./react.ts) are built on it; this module imports no React, so
 * `@eventbus/client/client` serves a plain script or a server too.
 */
import { EventBusError } from './errors.js';
import type {
  Analytics,
  AnalyticsWindow,
  DeliveryStatus,
  EventBusEvent,
  EventFilters,
  EventPage,
  PublishEventInput,
  StatsResponse,
  Webhook,
  WebhookDelivery,
  WebhookInput,
} from './types.js';

export { EventBusError } from './errors.js';
export type * from './types.js';

/** A token, or a function that returns the current one (Supabase refreshes them). */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

export interface EventBusClientOptions {
  /**
   * The relay's base URL, such as https://relay.example.com (its
   * EVENTBUS_HTTP_ADDR behind your proxy); "" or absent: the page's own
   * origin, for a frontend served by, or proxied to, the relay's host.
   */
  url?: string;
  /**
   * The user's Supabase access token (a JWT), sent as Authorization: Bearer.
   * Give a function to read it per request: tokenFromSupabase(supabase) does.
   * The relay lets in admins only (profiles.role = 'admin'); row-level
   * security limits them to their organization.
   */
  token?: TokenSource;
  /** fetch to use; the global one by default. */
  fetch?: typeof fetch;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

/** Per-call options: an AbortSignal (TanStack Query passes its own). */
export interface CallOptions {
  signal?: AbortSignal;
}

/** The part of a supabase-js client that tokenFromSupabase reads. */
export interface SupabaseAuthLike {
  auth: {
    getSession(): Promise<{ data: { session: { access_token: string } | null } }>;
  };
}

/**
 * tokenFromSupabase reads the signed-in user's access token from a supabase-js
 * client on every request, so a refreshed token is used as soon as supabase-js
 * has it. It uses the client's own session: this package depends on no
 * supabase-js.
 */
export function tokenFromSupabase(supabase: SupabaseAuthLike): () => Promise<string | undefined> {
  return async () => (await supabase.auth.getSession()).data.session?.access_token;
}

/** The relay's HTTP API. Every method throws EventBusError on failure. */
export class EventBusClient {
  readonly url: string;
  private readonly token: TokenSource | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly headers: Record<string, string>;

  constructor(options: EventBusClientOptions = {}) {
    this.url = (options.url ?? '').replace(/\/+$/, '');
    this.token = options.token;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') {
      throw new TypeError('EventBusClient: no fetch: pass options.fetch');
    }
    // A bare reference to window.fetch called as a method of another object
    // throws "Illegal invocation" in browsers.
    this.fetchFn = (input, init) => f(input, init);
    this.headers = { ...options.headers };
  }

  /** GET /api/events: one page, newest first (the seed's useEvents). */
  list(filters: EventFilters = {}, options: CallOptions = {}): Promise<EventPage> {
    return this.request<EventPage>('GET', '/events' + listQuery(filters), undefined, options);
  }

  /** GET /api/events/{id}; 404 (EventBusError) when the caller does not see it. */
  get(id: string, options: CallOptions = {}): Promise<EventBusEvent> {
    return this.request<EventBusEvent>('GET', '/events/' + encodeURIComponent(id), undefined, options);
  }

  /** POST /api/events: publish_event; resolves to the new event's id, as publish_event returns. */
  async publish(input: PublishEventInput, options: CallOptions = {}): Promise<string> {
    const res = await this.request<{ id: string }>('POST', '/events', input, options);
    return res.id;
  }

  /**
   * POST /api/events/process: process_pending_events(limit), which hands
   * stuck pending and failed events of the caller's organization back to the
   * relay; resolves to how many, as process_pending_events returns.
   */
  async process(limit = 100, options: CallOptions = {}): Promise<number> {
    const res = await this.request<{ handed_back: number }>('POST', '/events/process', { limit }, options);
    return res.handed_back;
  }

  /** POST /api/events/{id}/replay: publishes the event to the stream again; resolves to how many (1). */
  async replay(id: string, options: CallOptions = {}): Promise<number> {
    const res = await this.request<{ replayed: number }>('POST', '/events/' + encodeURIComponent(id) + '/replay', undefined, options);
    return res.replayed;
  }

  /** GET /api/stats: counts by status over 24 hours, per minute for the last hour, the relay's state. */
  stats(options: CallOptions = {}): Promise<StatsResponse> {
    return this.request<StatsResponse>('GET', '/stats', undefined, options);
  }

  /** GET /api/analytics?window=1h|24h|7d|30d. */
  analytics(window: AnalyticsWindow = '24h', options: CallOptions = {}): Promise<Analytics> {
    return this.request<Analytics>('GET', '/analytics?window=' + encodeURIComponent(window), undefined, options);
  }

  /** The webhook endpoints of the caller's organization (/api/webhooks). */
  readonly webhooks = {
    list: async (options: CallOptions = {}): Promise<Webhook[]> =>
      (await this.request<{ webhooks: Webhook[] }>('GET', '/webhooks', undefined, options)).webhooks,
    /** Resolves to the new endpoint with its secret, which is shown only here. */
    add: (input: WebhookInput, options: CallOptions = {}): Promise<Webhook> =>
      this.request<Webhook>('POST', '/webhooks', input, options),
    remove: async (id: string, options: CallOptions = {}): Promise<void> => {
      await this.request<void>('DELETE', '/webhooks/' + encodeURIComponent(id), undefined, options);
    },
    deliveries: async (
      id: string,
      filter: { status?: DeliveryStatus; limit?: number } = {},
      options: CallOptions = {},
    ): Promise<WebhookDelivery[]> => {
      const q = new URLSearchParams();
      if (filter.status) q.set('status', filter.status);
      if (filter.limit !== undefined) q.set('limit', String(filter.limit));
      const qs = q.toString();
      const path = '/webhooks/' + encodeURIComponent(id) + '/deliveries' + (qs ? '?' + qs : '');
      return (await this.request<{ deliveries: WebhookDelivery[] }>('GET', path, undefined, options)).deliveries;
    },
    /** Makes the failed deliveries (or the ones named) pending again; resolves to how many. */
    redeliver: async (id: string, deliveryIds?: string[], options: CallOptions = {}): Promise<number> => {
      const body = deliveryIds && deliveryIds.length > 0 ? { delivery_ids: deliveryIds } : undefined;
      const res = await this.request<{ redelivered: number }>('POST', '/webhooks/' + encodeURIComponent(id) + '/redeliver', body, options);
      return res.redelivered;
    },
  };

  private async request<T>(method: string, path: string, body: unknown, options: CallOptions): Promise<T> {
    const url = this.url + '/api' + path;
    const headers: Record<string, string> = { Accept: 'application/json', ...this.headers };
    const token = typeof this.token === 'function' ? await this.token() : this.token;
    if (token) headers['Authorization'] = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: options.signal,
      });
    } catch (err) {
      if (options.signal?.aborted) throw err; // TanStack Query tells a cancel by the AbortError
      throw new EventBusError(0, `${method} ${url}: the relay could not be reached: ${errorText(err)}`, { cause: err });
    }
    const requestId = res.headers.get('X-Request-Id') ?? undefined;
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        const what = res.ok ? 'an answer that is not JSON' : `HTTP ${res.status} with a body that is not JSON`;
        throw new EventBusError(res.ok ? 0 : res.status, `${method} ${url}: the relay sent ${what}: ${text.slice(0, 200)}`, {
          requestId,
          cause: err,
        });
      }
    }
    if (!res.ok) {
      const rec = (parsed ?? {}) as { error?: unknown; request_id?: unknown };
      const msg = typeof rec.error === 'string' && rec.error !== '' ? rec.error : `HTTP ${res.status} ${res.statusText}`.trim();
      const id = requestId ?? (typeof rec.request_id === 'string' ? rec.request_id : undefined);
      throw new EventBusError(res.status, id && res.status >= 500 ? `${msg} (request ${id})` : msg, { requestId: id, body: parsed });
    }
    return parsed as T;
  }
}

/** listQuery is the query string of GET /api/events for filters ('' for none). */
export function listQuery(filters: EventFilters): string {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) {
    if (value === undefined || value === null || value === '') continue;
    if (value instanceof Date) q.set(key, value.toISOString());
    else if (typeof value === 'object') q.set(key, JSON.stringify(value));
    else q.set(key, String(value));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}

// @vitest-environment node
// (no DOM needed: only the hooks are rendered, in jsdom)
import { describe, expect, it } from 'vitest';

import { EventBusClient, EventBusError, listQuery, tokenFromSupabase } from '../src/index.js';
import {
  adminID,
  adminJWT,
  client,
  eventually,
  failingID,
  memberJWT,
  orgID,
  otherAdminJWT,
  otherOrgID,
  relayURL,
  unique,
} from './env.js';

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function rejection(p: Promise<unknown>): Promise<EventBusError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(EventBusError);
    return err as EventBusError;
  }
  throw new Error('the call succeeded; want an EventBusError');
}

describe('EventBusClient against the relay', () => {
  it('publishes an event that get and list show, the relay processes and replay republishes', async () => {
    const bus = client();
    const aggregate = unique('client-publish');
    const id = await bus.publish({
      event_type: 'custom.event',
      aggregate_type: aggregate,
      aggregate_id: 'some-id',
      payload: { key: 'value' },
      metadata: { source: 'manual' },
    });
    expect(id).toMatch(uuid);

    const got = await bus.get(id);
    expect(got).toMatchObject({
      id,
      event_type: 'custom.event',
      aggregate_type: aggregate,
      aggregate_id: 'some-id',
      organization_id: orgID, // a NULL organization is the publisher's own
      payload: { key: 'value' },
      metadata: { source: 'manual', published_by: adminID },
    });
    expect(Date.parse(got.created_at!)).not.toBeNaN();

    const processed = await eventually('the event processed', async () => {
      const e = await bus.get(id);
      return e.status === 'processed' ? e : undefined;
    });
    expect(processed.processed_at).not.toBeNull();
    expect(processed.retry_count).toBe(0);

    // Replay publishes it to the stream once more (the broker acknowledged it).
    expect(await bus.replay(id)).toBe(1);
    expect((await rejection(client(otherAdminJWT).replay(id))).status).toBe(404);
  });

  it('lists newest first with the seed filters, and pages with next_cursor', async () => {
    const bus = client();
    const aggregate = unique('client-list');
    const ids: string[] = [];
    for (const type of ['order.placed', 'order.paid', 'order.placed']) {
      ids.push(await bus.publish({ event_type: type, aggregate_type: aggregate, aggregate_id: `o-${ids.length}` }));
    }
    const all = await bus.list({ aggregate_type: aggregate });
    expect(all.events.map((e) => e.id)).toEqual([...ids].reverse());
    expect(all.next_cursor).toBeNull();

    const placed = await bus.list({ aggregate_type: aggregate, event_type: 'order.placed' });
    expect(placed.events.map((e) => e.id)).toEqual([ids[2], ids[0]]);

    const first = await bus.list({ aggregate_type: aggregate, limit: 2 });
    expect(first.events.map((e) => e.id)).toEqual([ids[2], ids[1]]);
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = await bus.list({ aggregate_type: aggregate, limit: 2, cursor: first.next_cursor! });
    expect(second.events.map((e) => e.id)).toEqual([ids[0]]);
    expect(second.next_cursor).toBeNull();

    await eventually('all three processed', async () => {
      const page = await bus.list({ aggregate_type: aggregate, status: 'processed' });
      return page.events.length === 3 ? true : undefined;
    });
    const pending = await bus.list({ aggregate_type: aggregate, status: 'pending' });
    expect(pending.events).toEqual([]);
  });

  it('counts the organization’s events of the last 24 hours in stats', async () => {
    const bus = client();
    const before = await bus.stats();
    expect(before.total).toBe(before.pending + before.processing + before.processed + before.failed);
    expect(before.relay.state).toBe('active');
    expect(before.relay.nats_connected).toBe(true);
    expect(before.per_minute.length).toBeGreaterThan(0);

    const aggregate = unique('client-stats');
    for (let i = 0; i < 3; i++) {
      await bus.publish({ event_type: 'stats.counted', aggregate_type: aggregate, aggregate_id: `s-${i}` });
    }
    const after = await eventually('three more processed', async () => {
      const s = await bus.stats();
      return s.processed === before.processed + 3 ? s : undefined;
    });
    expect(after.total).toBe(before.total + 3);
    expect(after.failed).toBe(before.failed);

    // Organization B's admin counts none of them.
    const other = await client(otherAdminJWT).stats();
    expect(other.total).toBe(0);
  });

  it('reads the organization’s analytics, and the count a search matched', async () => {
    const bus = client();
    const aggregate = unique('client-analytics');
    for (let i = 0; i < 2; i++) {
      await bus.publish({ event_type: 'analytics.counted', aggregate_type: aggregate, aggregate_id: `a-${i}` });
    }
    const a = await eventually('both counted as processed', async () => {
      const r = await bus.analytics('1h');
      const t = r.event_types.find((x) => x.event_type === 'analytics.counted');
      return t && t.processed === 2 ? r : undefined;
    });
    expect(a.window).toBe('1h');
    expect(a.bucket_seconds).toBe(60);
    expect(a.buckets.length).toBeGreaterThan(0);
    expect(a.totals.total).toBeGreaterThanOrEqual(2);
    expect(a.latency_ms.count).toBeGreaterThanOrEqual(2);
    expect(a.busiest_aggregates.some((x) => x.aggregate_type === aggregate)).toBe(true);
    const page = await bus.list({ aggregate_type: aggregate });
    expect(page.matched).toBe(2);
    // Organization B's admin sees none of them.
    const other = await client(otherAdminJWT).analytics('1h');
    expect(other.event_types.some((x) => x.event_type === 'analytics.counted')).toBe(false);
    const bad = await rejection(bus.analytics('2h' as never));
    expect(bad.status).toBe(400);
  });

  it('hands a failed event back to the relay with process', async () => {
    const bus = client();
    const failed = await eventually('the failing event failed', async () => {
      const e = await bus.get(failingID);
      return e.status === 'failed' ? e : undefined;
    });
    expect(failed.error_message).toEqual(expect.any(String));

    const handedBack = await bus.process(100);
    expect(handedBack).toBeGreaterThanOrEqual(1);
    // The relay takes it again, and it fails again: its type is no subject.
    const again = await eventually('the event failed once more', async () => {
      const e = await bus.get(failingID);
      return e.status === 'failed' && e.retry_count > failed.retry_count ? e : undefined;
    });
    expect(again.error_message).toEqual(expect.any(String));

    // Organization B's admin hands back none of A's events.
    expect(await client(otherAdminJWT).process(100)).toBe(0);
  });

  it('keeps organizations apart (row-level security)', async () => {
    const aggregate = unique('client-rls');
    const id = await client().publish({ event_type: 'secret.thing', aggregate_type: aggregate, aggregate_id: 'x' });
    const other = client(otherAdminJWT);
    const notFound = await rejection(other.get(id));
    expect(notFound.status).toBe(404);
    expect(notFound.message).toBe(`event ${id} not found`);
    expect((await other.list({ aggregate_type: aggregate })).events).toEqual([]);

    const forbidden = await rejection(
      client().publish({ event_type: 'x.y', aggregate_type: aggregate, aggregate_id: 'x', organization_id: otherOrgID }),
    );
    expect(forbidden.status).toBe(403);
    expect(forbidden.isAuthError).toBe(true);
  });

  it('maps the relay’s errors to EventBusError with status and message', async () => {
    const bus = client();
    const badStatus = await rejection(bus.list({ status: 'bogus' as never }));
    expect(badStatus.status).toBe(400);
    expect(badStatus.message).toBe('status "bogus": want pending, processing, processed or failed');
    expect(badStatus.body).toEqual({ error: badStatus.message });

    const badType = await rejection(bus.publish({ event_type: 'no spaces', aggregate_type: 'a', aggregate_id: 'b' }));
    expect(badType.status).toBe(400);
    expect(badType.message).toMatch(/^publish_event: p_event_type .* is not a valid event type/);

    const badID = await rejection(bus.get('not-a-uuid'));
    expect(badID.status).toBe(400);
    const badLimit = await rejection(bus.process(0));
    expect(badLimit.status).toBe(400);
    expect(badLimit.message).toBe('limit must be between 1 and 10000, got 0');

    const noToken = await rejection(client('').stats());
    expect(noToken.status).toBe(401);
    expect(noToken.message).toMatch(/^sign in: send Authorization: Bearer/);
    const badJWT = await rejection(client(adminJWT.slice(0, -4) + 'AAAA').stats());
    expect(badJWT.status).toBe(401);
    expect(badJWT.message).toMatch(/^the JWT is not valid/);
    const member = await rejection(client(memberJWT).list());
    expect(member.status).toBe(403);
    expect(member.message).toMatch(/is not an admin/);
    expect(member.isAuthError).toBe(true);

    const unreachable = await rejection(new EventBusClient({ url: 'http://127.0.0.1:1', token: adminJWT }).stats());
    expect(unreachable.status).toBe(0);
    expect(unreachable.message).toMatch(/could not be reached/);
  });

  it('reads the token per request from a function such as tokenFromSupabase', async () => {
    let session: { access_token: string } | null = null;
    const supabase = { auth: { getSession: async () => ({ data: { session } }) } };
    const bus = new EventBusClient({ url: relayURL + '/', token: tokenFromSupabase(supabase) });
    expect((await rejection(bus.stats())).status).toBe(401);
    session = { access_token: adminJWT };
    expect((await bus.stats()).relay.state).toBe('active');
  });

  it('manages webhooks of the organization', async () => {
    const bus = client();
    const hook = await bus.webhooks.add({ url: 'http://127.0.0.1:9/hook', event_types: ['order.*'], description: 'client test' });
    expect(hook.id).toMatch(uuid);
    expect(hook.secret).toMatch(/^whsec_/);
    expect(hook.organization_id).toBe(orgID);
    const listed = await bus.webhooks.list();
    const mine = listed.find((w) => w.id === hook.id);
    expect(mine).toMatchObject({ url: 'http://127.0.0.1:9/hook', event_types: ['order.*'], enabled: true });
    expect(mine?.secret).toBeUndefined();
    expect(await client(otherAdminJWT).webhooks.list()).toEqual([]);

    expect(await bus.webhooks.deliveries(hook.id, { status: 'failed' })).toEqual([]);
    expect(await bus.webhooks.redeliver(hook.id)).toBe(0);
    const badURL = await rejection(bus.webhooks.add({ url: 'ftp://x.example/' }));
    expect(badURL.status).toBe(400);

    await bus.webhooks.remove(hook.id);
    expect((await bus.webhooks.list()).some((w) => w.id === hook.id)).toBe(false);
    expect((await rejection(bus.webhooks.remove(hook.id))).status).toBe(404);
  });
});

describe('listQuery', () => {
  it('writes the filters the relay reads, skipping empty ones', () => {
    expect(listQuery({})).toBe('');
    expect(listQuery({ status: 'failed', event_type: 'lead.created', aggregate_type: '', limit: 5 })).toBe(
      '?status=failed&event_type=lead.created&limit=5',
    );
    expect(listQuery({ since: new Date('2026-01-02T03:04:05Z'), payload: { a: 1 } })).toBe(
      '?since=2026-01-02T03%3A04%3A05.000Z&payload=%7B%22a%22%3A1%7D',
    );
  });
});

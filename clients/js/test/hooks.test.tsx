import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { act, cleanup, renderHook, waitFor } from '@testing-library/react';
import type { ReactNode } from 'react';
import { afterEach, describe, expect, it } from 'vitest';

import {
  EventBusClient,
  EventBusError,
  EventBusProvider,
  useEvents,
  useEventStats,
  useProcessPendingEvents,
  usePublishEvent,
} from '../src/index.js';
import { adminJWT, client, eventually, failingID, memberJWT, orgID, unique } from './env.js';

function wrapper(bus: EventBusClient = client()) {
  // notifyOnChangeProps 'all': a test reads result.current's fields after the
  // render, which TanStack's tracking of the fields a render read misses.
  const queryClient = new QueryClient({
    defaultOptions: { queries: { retry: false, notifyOnChangeProps: 'all' }, mutations: { retry: false } },
  });
  return ({ children }: { children: ReactNode }) => (
    <QueryClientProvider client={queryClient}>
      <EventBusProvider client={bus}>{children}</EventBusProvider>
    </QueryClientProvider>
  );
}

const wait = { timeout: 30_000, interval: 100 };

// Unmount each test's hooks (Testing Library does it by itself only with
// vitest's globals), so that no polling query outlives its test, or jsdom.
afterEach(() => cleanup());

describe('the seed’s React hooks against the relay', () => {
  it('useEvents shows an event published with usePublishEvent, then processed', async () => {
    const aggregate = unique('hooks-events');
    const { result } = renderHook(
      () => ({
        events: useEvents({ aggregate_type: aggregate }, { refetchInterval: 300 }),
        pending: useEvents({ status: 'pending', event_type: 'custom.event', aggregate_type: aggregate }),
        publishEvent: usePublishEvent(),
      }),
      { wrapper: wrapper() },
    );
    expect(result.current.events.isLoading).toBe(true);
    await waitFor(() => expect(result.current.events.isSuccess).toBe(true), wait);
    expect(result.current.events.data).toEqual([]);

    act(() => {
      // Exactly as the seed calls it.
      result.current.publishEvent.mutate({
        event_type: 'custom.event',
        aggregate_type: aggregate,
        aggregate_id: 'some-id',
        payload: { key: 'value' },
        metadata: { source: 'manual' },
      });
    });
    await waitFor(() => expect(result.current.publishEvent.isSuccess).toBe(true), wait);
    const id = result.current.publishEvent.data!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    // The mutation refetched the lists: the new event is there.
    await waitFor(() => expect(result.current.events.data?.map((e) => e.id)).toEqual([id]), wait);
    const shown = result.current.events.data![0]!;
    expect(shown).toMatchObject({ event_type: 'custom.event', aggregate_id: 'some-id', organization_id: orgID, payload: { key: 'value' } });
    // And, polled, it ends processed; the pending filter never lists it once processed.
    await waitFor(() => expect(result.current.events.data?.[0]?.status).toBe('processed'), wait);
    await act(() => result.current.pending.refetch());
    await waitFor(() => expect(result.current.pending.data).toEqual([]), wait);
  });

  it('usePublishEvent surfaces the relay’s refusal as an EventBusError', async () => {
    const { result } = renderHook(() => usePublishEvent(), { wrapper: wrapper() });
    act(() => result.current.mutate({ event_type: 'not a subject', aggregate_type: 'custom', aggregate_id: 'x' }));
    await waitFor(() => expect(result.current.isError).toBe(true), wait);
    expect(result.current.error).toBeInstanceOf(EventBusError);
    expect(result.current.error?.status).toBe(400);
    expect(result.current.error?.message).toMatch(/is not a valid event type/);
  });

  it('useEventStats counts by status over 24 h and changes when events are published', async () => {
    const { result } = renderHook(() => ({ stats: useEventStats(), publishEvent: usePublishEvent() }), { wrapper: wrapper() });
    await waitFor(() => expect(result.current.stats.isSuccess).toBe(true), wait);
    const before = result.current.stats.data!;
    // The seed's shape, exactly.
    expect(Object.keys(before).sort()).toEqual(['failed', 'pending', 'processed', 'processing', 'total']);
    expect(before.total).toBe(before.pending + before.processing + before.processed + before.failed);

    const aggregate = unique('hooks-stats');
    await act(() => result.current.publishEvent.mutateAsync({ event_type: 'stats.hooked', aggregate_type: aggregate, aggregate_id: '1' }));
    await act(() => result.current.publishEvent.mutateAsync({ event_type: 'stats.hooked', aggregate_type: aggregate, aggregate_id: '2' }));
    // The stats do not poll: the mutations' invalidation refetched them.
    // (TanStack hands the new data to React a tick after mutateAsync resolves.)
    await waitFor(() => expect(result.current.stats.data!.total).toBe(before.total + 2), wait);
    await eventually('both processed in the stats', async () => {
      await act(() => result.current.stats.refetch());
      return result.current.stats.data!.processed === before.processed + 2 ? true : undefined;
    });
  });

  it('useProcessPendingEvents.mutate(100) hands a failed event back', async () => {
    await eventually('the failing event failed', async () => ((await client().get(failingID)).status === 'failed' ? true : undefined));
    const { result } = renderHook(
      () => ({ failed: useEvents({ status: 'failed' }), processPendingEvents: useProcessPendingEvents() }),
      { wrapper: wrapper() },
    );
    await waitFor(() => expect(result.current.failed.data?.map((e) => e.id)).toContain(failingID), wait);
    act(() => result.current.processPendingEvents.mutate(100));
    await waitFor(() => expect(result.current.processPendingEvents.isSuccess).toBe(true), wait);
    expect(result.current.processPendingEvents.data).toBeGreaterThanOrEqual(1);
  });

  it('useProcessPendingEvents and useEvents surface a refused caller and bad filters', async () => {
    const { result } = renderHook(
      () => ({ processPendingEvents: useProcessPendingEvents(), events: useEvents({ status: 'bogus' as never }) }),
      { wrapper: wrapper(client(memberJWT)) },
    );
    act(() => result.current.processPendingEvents.mutate(100));
    await waitFor(() => expect(result.current.processPendingEvents.isError).toBe(true), wait);
    expect(result.current.processPendingEvents.error?.status).toBe(403);
    await waitFor(() => expect(result.current.events.isError).toBe(true), wait);
    expect(result.current.events.error?.status).toBe(403); // not an admin, before the filter is read

    const bad = renderHook(() => useEvents({ status: 'bogus' as never }), { wrapper: wrapper(client(adminJWT)) });
    await waitFor(() => expect(bad.result.current.isError).toBe(true), wait);
    expect(bad.result.current.error?.status).toBe(400);
    expect(bad.result.current.error?.message).toBe('status "bogus": want pending, processing, processed or failed');
  });

  it('needs an EventBusProvider', () => {
    const queryClient = new QueryClient();
    const onlyQuery = ({ children }: { children: ReactNode }) => <QueryClientProvider client={queryClient}>{children}</QueryClientProvider>;
    expect(() => renderHook(() => useEvents(), { wrapper: onlyQuery })).toThrow(/EventBusProvider/);
  });
});

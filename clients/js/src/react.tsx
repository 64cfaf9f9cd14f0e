/**
 * The seed's React hooks (useEvents, usePublishEvent,
 * useProcessPendingEvents, useEventStats) on TanStack Query v5, with the
 * seed's names, parameters and return shapes, over an EventBusClient that
 * EventBusProvider hands down. The app brings its own QueryClientProvider.
 */
import { createContext, useContext, type ReactNode } from 'react';
import {
  useMutation,
  useQuery,
  useQueryClient,
  type UseMutationOptions,
  type UseMutationResult,
  type UseQueryOptions,
  type UseQueryResult,
} from '@tanstack/react-query';

import type { EventBusClient } from './client.js';
import type { EventBusError } from './errors.js';
import type { EventBusEvent, EventFilters, EventStats, PublishEventInput } from './types.js';

const ClientContext = createContext<EventBusClient | null>(null);

/** EventBusProvider makes client the one the hooks below it use. */
export function EventBusProvider({ client, children }: { client: EventBusClient; children?: ReactNode }) {
  return <ClientContext.Provider value={client}>{children}</ClientContext.Provider>;
}

/** useEventBusClient returns the EventBusProvider's client. */
export function useEventBusClient(): EventBusClient {
  const client = useContext(ClientContext);
  if (client === null) {
    throw new Error('@eventbus/client: the hooks need an <EventBusProvider client={new EventBusClient(...)}> above them');
  }
  return client;
}

/**
 * The query keys of the hooks: every one starts with eventBusKeys.all, which
 * usePublishEvent and useProcessPendingEvents invalidate when they succeed.
 */
export const eventBusKeys = {
  all: ['event-bus'] as const,
  events: (filters: EventFilters) => ['event-bus', 'events', filters] as const,
  stats: () => ['event-bus', 'stats'] as const,
};

/** Options of the query hooks: TanStack's, less the key and the function. */
export type EventBusQueryOptions<T> = Omit<UseQueryOptions<T, EventBusError, T>, 'queryKey' | 'queryFn'>;

/** The filters of useEvents: the seed's status, event_type, aggregate_type, and the relay's others. */
export type UseEventsFilters = Omit<EventFilters, 'cursor'>;

/**
 * useEvents lists events, newest first: the last 100 (filters.limit to
 * change), of the caller's organization. data is the array of events.
 *
 *   const { data: events, isLoading } = useEvents({ status: 'pending', event_type: 'lead.created' });
 */
export function useEvents(
  filters: UseEventsFilters = {},
  options: EventBusQueryOptions<EventBusEvent[]> = {},
): UseQueryResult<EventBusEvent[], EventBusError> {
  const client = useEventBusClient();
  return useQuery<EventBusEvent[], EventBusError>({
    ...options,
    queryKey: eventBusKeys.events(filters),
    queryFn: async ({ signal }) => (await client.list(filters, { signal })).events,
  });
}

/** The mutation options of the mutation hooks: TanStack's, less the function. */
export type EventBusMutationOptions<TData, TVariables> = Omit<
  UseMutationOptions<TData, EventBusError, TVariables>,
  'mutationFn'
>;

/**
 * usePublishEvent publishes an event (publish_event); data is the new
 * event's id. On success the hooks' queries are refetched.
 *
 *   const publishEvent = usePublishEvent();
 *   publishEvent.mutate({ event_type: 'custom.event', aggregate_type: 'custom', aggregate_id: 'some-id',
 *     payload: { key: 'value' }, metadata: { source: 'manual' } });
 */
export function usePublishEvent(
  options: EventBusMutationOptions<string, PublishEventInput> = {},
): UseMutationResult<string, EventBusError, PublishEventInput> {
  const client = useEventBusClient();
  const onSuccess = useRefetchOnSuccess(options.onSuccess);
  return useMutation<string, EventBusError, PublishEventInput>({
    ...options,
    mutationFn: (input) => client.publish(input),
    onSuccess,
  });
}

/**
 * useProcessPendingEvents hands stuck pending and failed events back to the
 * relay (process_pending_events); mutate takes the limit (100 when not
 * given); data is how many were handed back.
 *
 *   const processPendingEvents = useProcessPendingEvents();
 *   processPendingEvents.mutate(100);
 */
export function useProcessPendingEvents(
  options: EventBusMutationOptions<number, number | void> = {},
): UseMutationResult<number, EventBusError, number | void> {
  const client = useEventBusClient();
  const onSuccess = useRefetchOnSuccess(options.onSuccess);
  return useMutation<number, EventBusError, number | void>({
    ...options,
    mutationFn: (limit) => client.process(typeof limit === 'number' ? limit : 100),
    onSuccess,
  });
}

/**
 * useEventStats counts the caller's events of the last 24 hours by status.
 *
 *   const { data: stats } = useEventStats();
 *   // stats = { pending: 5, processing: 2, processed: 100, failed: 1, total: 108 }
 */
export function useEventStats(options: EventBusQueryOptions<EventStats> = {}): UseQueryResult<EventStats, EventBusError> {
  const client = useEventBusClient();
  return useQuery<EventStats, EventBusError>({
    ...options,
    queryKey: eventBusKeys.stats(),
    queryFn: async ({ signal }) => {
      const s = await client.stats({ signal });
      return { pending: s.pending, processing: s.processing, processed: s.processed, failed: s.failed, total: s.total };
    },
  });
}

// useRefetchOnSuccess wraps a mutation's onSuccess: the hooks' queries are
// invalidated (and the mounted ones refetched) before the mutation settles,
// so that what a component shows after mutateAsync resolves includes it.
function useRefetchOnSuccess<TData, TVariables>(
  user: UseMutationOptions<TData, EventBusError, TVariables>['onSuccess'],
): NonNullable<UseMutationOptions<TData, EventBusError, TVariables>['onSuccess']> {
  const queryClient = useQueryClient();
  return async (...args) => {
    await queryClient.invalidateQueries({ queryKey: eventBusKeys.all });
    return user?.(...args);
  };
}

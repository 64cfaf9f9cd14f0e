/**
 * @eventbus/client: EventBusClient (the relay's /api, typed) and the seed's
 * React hooks on TanStack Query. See README.md.
 */
export * from './client.js';
export * from './react.js';

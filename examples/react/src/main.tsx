// The example's entry: one EventBusClient for the relay, TanStack Query's
// client, and the App under both providers. A CRM reads the token from
// supabase-js instead: token: tokenFromSupabase(supabase).
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { createRoot } from 'react-dom/client';

import { EventBusClient, EventBusProvider } from '@eventbus/client';

import { App } from './App';

declare global {
  interface Window {
    eventbusConfig?: { url?: string; token?: string };
  }
}

const config = window.eventbusConfig ?? {};
const eventBus = new EventBusClient({ url: config.url ?? '', token: config.token });
const queryClient = new QueryClient();

createRoot(document.getElementById('root')!).render(
  <QueryClientProvider client={queryClient}>
    <EventBusProvider client={eventBus}>
      <App />
    </EventBusProvider>
  </QueryClientProvider>,
);

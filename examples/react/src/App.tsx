// A page of a CRM built on the seed's hooks: the last 24 hours' counts
// (useEventStats), the newest events (useEvents), a button that publishes
// an event (usePublishEvent) and one that hands stuck events back
// (useProcessPendingEvents). Both poll every second, so the relay's work
// shows without a reload.
import { useState } from 'react';

import { useEvents, useEventStats, useProcessPendingEvents, usePublishEvent, type EventStatus } from '@eventbus/client';

const statuses: EventStatus[] = ['pending', 'processing', 'processed', 'failed'];

export function App() {
  const [status, setStatus] = useState<EventStatus | ''>('');
  const { data: stats } = useEventStats({ refetchInterval: 1000 });
  const { data: events, isLoading, error } = useEvents(status ? { status } : {}, { refetchInterval: 1000 });
  const publishEvent = usePublishEvent();
  const processPendingEvents = useProcessPendingEvents();
  const [clicks, setClicks] = useState(0);

  const publish = () => {
    const n = clicks + 1;
    setClicks(n);
    publishEvent.mutate({
      event_type: 'example.clicked',
      aggregate_type: 'example',
      aggregate_id: `click-${n}`,
      payload: { click: n },
      metadata: { source: 'examples/react' },
    });
  };

  return (
    <main>
      <h1>Event Bus</h1>
      <section className="stats" id="stats" aria-label="Last 24 hours">
        {(['pending', 'processing', 'processed', 'failed', 'total'] as const).map((k) => (
          <div key={k} data-stat={k}>
            {k}
            <b>{stats ? stats[k] : '…'}</b>
          </div>
        ))}
      </section>
      <p>
        <button id="publish" onClick={publish} disabled={publishEvent.isPending}>
          Publish an event
        </button>
        <button id="process" onClick={() => processPendingEvents.mutate(100)} disabled={processPendingEvents.isPending}>
          Process pending
        </button>
        <label>
          Status{' '}
          <select id="status" value={status} onChange={(e) => setStatus(e.target.value as EventStatus | '')}>
            <option value="">all</option>
            {statuses.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </p>
      <p id="result" aria-live="polite">
        {publishEvent.isSuccess && <span data-published={publishEvent.data}>Published {publishEvent.data}. </span>}
        {processPendingEvents.isSuccess && (
          <span data-handed-back={processPendingEvents.data}>Handed back {processPendingEvents.data}. </span>
        )}
        {[publishEvent.error, processPendingEvents.error, error].map(
          (e, i) => e && (<span key={i} className="error" data-error-status={e.status}>{e.message} </span>),
        )}
      </p>
      {isLoading ? (
        <p>Loading…</p>
      ) : (
        <table id="events">
          <thead>
            <tr>
              <th>created</th>
              <th>event type</th>
              <th>aggregate</th>
              <th>status</th>
            </tr>
          </thead>
          <tbody>
            {events?.map((event) => (
              <tr key={event.id} data-id={event.id} data-status={event.status}>
                <td>{event.created_at ? new Date(event.created_at).toLocaleTimeString() : '—'}</td>
                <td>{event.event_type}</td>
                <td>
                  {event.aggregate_type}/{event.aggregate_id}
                </td>
                <td className={`status-${event.status}`}>{event.status}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}

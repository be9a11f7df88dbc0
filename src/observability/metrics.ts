import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric of one service instance, in its own registry (tests run several in a process). */
export interface Metrics {
  registry: Registry;
  eventsIngested: Counter<'endpoint'>;
  eventsDuplicate: Counter<'endpoint'>;
  recordsRejected: Counter<'endpoint' | 'field'>;
  profileUpdates: Counter<'kind' | 'operation'>;
  requestsRejected: Counter<'endpoint' | 'reason'>;
  requestDuration: Histogram<'method' | 'route' | 'status_code'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cohortcast_' });
  const registers = [registry];
  return {
    registry,
    eventsIngested: new Counter({
      name: 'cohortcast_events_ingested_total',
      help: 'Events stored, by ingestion endpoint (duplicates not counted).',
      labelNames: ['endpoint'],
      registers,
    }),
    eventsDuplicate: new Counter({
      name: 'cohortcast_events_duplicate_total',
      help: 'Events dropped as duplicates of (event, time, distinct_id, $insert_id).',
      labelNames: ['endpoint'],
      registers,
    }),
    recordsRejected: new Counter({
      name: 'cohortcast_records_rejected_total',
      help: 'Events and profile updates refused by validation, by the field at fault.',
      labelNames: ['endpoint', 'field'],
      registers,
    }),
    profileUpdates: new Counter({
      name: 'cohortcast_profile_updates_total',
      help: 'Profile operations applied, by kind (user, group) and operation.',
      labelNames: ['kind', 'operation'],
      registers,
    }),
    requestsRejected: new Counter({
      name: 'cohortcast_rejected_requests_total',
      help: 'Ingestion requests refused in whole or in part, by reason.',
      labelNames: ['endpoint', 'reason'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'cohortcast_http_request_duration_seconds',
      help: 'HTTP request latency, by route.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
  };
}

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric of one service instance, in its own registry (tests run several in a process). */
export interface Metrics {
  registry: Registry;
  eventsIngested: Counter<'endpoint'>;
  eventsDuplicate: Counter<'endpoint'>;
  recordsRejected: Counter<'endpoint' | 'field'>;
  profileUpdates: Counter<'kind' | 'operation'>;
  requestsRejected: Counter<'endpoint' | 'reason'>;
  requestDuration: Histogram<'method' | 'route' | 'status_code'>;
  deliveryAttempts: Counter<'channel' | 'outcome'>;
  deliveriesFinished: Counter<'channel' | 'outcome'>;
  attemptDuration: Histogram<'channel' | 'outcome'>;
  membershipChanges: Counter<'change' | 'source'>;
  membershipSweepDuration: Histogram;
  messageUsers: Counter<'outcome'>;
  /** One slice of pruning (retention, dropping superseded snapshots) ended: its time and rows. */
  observeSlice(kind: string, ms: number, removed: number): void;
  /** Where the queue gauges read from; set by whoever runs a dispatcher. */
  queueSource: { read?: () => Promise<{ pending: number; oldestDueAt: number | null }> };
  /** Where the subscription backlog gauges read from; set by the subscriptions surface. */
  backlogSource: { read?: () => Promise<{ eventsWaiting: number; profilesWaiting: number }> };
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const queueSource: Metrics['queueSource'] = {};
  const backlogSource: Metrics['backlogSource'] = {};
  // One read serves both gauges in a scrape.
  let snapshot: Promise<{ pending: number; oldestDueAt: number | null }> | undefined;
  const readQueue = () => (snapshot ??= (queueSource.read?.() ?? Promise.resolve({ pending: 0, oldestDueAt: null })).finally(() => setImmediate(() => (snapshot = undefined))));
  collectDefaultMetrics({ register: registry, prefix: 'cohortcast_' });
  const registers = [registry];
  const rowsRemoved = new Counter({
    name: 'cohortcast_retention_rows_removed_total',
    help: 'Rows pruning removed (delivery_bodies: bodies emptied), by kind.',
    labelNames: ['kind'],
    registers,
  });
  const sliceDuration = new Histogram({
    name: 'cohortcast_retention_slice_duration_seconds',
    help: 'How long one slice of pruning (one transaction) held the database, by kind.',
    labelNames: ['kind'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers,
  });
  const longestSlice = new Map<string, number>();
  const longestSliceGauge = new Gauge({
    name: 'cohortcast_retention_longest_slice_seconds',
    help: 'The longest slice of pruning since the process started, by kind (the target is under 0.05).',
    labelNames: ['kind'],
    registers,
  });
  const metrics: Metrics = {
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
    deliveryAttempts: new Counter({
      name: 'cohortcast_delivery_attempts_total',
      help: 'Attempts made by the dispatcher, by channel (webhook, email) and outcome (success, retry, rejected, failed, exhausted).',
      labelNames: ['channel', 'outcome'],
      registers,
    }),
    deliveriesFinished: new Counter({
      name: 'cohortcast_deliveries_total',
      help: 'Deliveries that reached an end, by channel and outcome (delivered, rejected, failed, exhausted).',
      labelNames: ['channel', 'outcome'],
      registers,
    }),
    attemptDuration: new Histogram({
      name: 'cohortcast_delivery_attempt_duration_seconds',
      help: 'Latency of delivery attempts, from sending to the end of the reply, by channel and outcome.',
      labelNames: ['channel', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    messageUsers: new Counter({
      name: 'cohortcast_message_users_total',
      help: 'Users of webhook messages by how their batch ended: sent (a 200), unsent (anything else: sent again later), dropped (no longer matching, or their profile gone).',
      labelNames: ['outcome'],
      registers,
    }),
    membershipChanges: new Counter({
      name: 'cohortcast_membership_changes_total',
      help: 'Members that entered or exited a watched cohort, by change (entered, exited) and what found it (evaluation, sweep).',
      labelNames: ['change', 'source'],
      registers,
    }),
    membershipSweepDuration: new Histogram({
      name: 'cohortcast_membership_sweep_duration_seconds',
      help: 'How long a sweep of every watched cohort took.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    observeSlice(kind, ms, removed) {
      sliceDuration.observe({ kind }, ms / 1000);
      if (removed > 0) rowsRemoved.inc({ kind }, removed);
      const longest = Math.max(longestSlice.get(kind) ?? 0, ms);
      longestSlice.set(kind, longest);
      longestSliceGauge.set({ kind }, longest / 1000);
    },
    queueSource,
    backlogSource,
  };
  let backlog: Promise<{ eventsWaiting: number; profilesWaiting: number }> | undefined;
  const readBacklog = () => (backlog ??= (backlogSource.read?.() ?? Promise.resolve({ eventsWaiting: 0, profilesWaiting: 0 })).finally(() => setImmediate(() => (backlog = undefined))));
  new Gauge({
    name: 'cohortcast_subscription_events_waiting',
    help: 'Events written for subscriptions and not yet turned into deliveries.',
    registers,
    async collect() {
      this.set((await readBacklog()).eventsWaiting);
    },
  });
  new Gauge({
    name: 'cohortcast_membership_profiles_waiting',
    help: 'Profiles changed by ingestion and not yet evaluated against the watched cohorts.',
    registers,
    async collect() {
      this.set((await readBacklog()).profilesWaiting);
    },
  });
  new Gauge({
    name: 'cohortcast_delivery_queue_depth',
    help: 'Deliveries waiting to be sent or retried.',
    registers,
    async collect() {
      this.set((await readQueue()).pending);
    },
  });
  new Gauge({
    name: 'cohortcast_delivery_oldest_due_age_seconds',
    help: 'How long the oldest due delivery has been waiting (0 when none is due).',
    registers,
    async collect() {
      const { oldestDueAt } = await readQueue();
      this.set(oldestDueAt === null ? 0 : Math.max(0, (Date.now() - oldestDueAt) / 1000));
    },
  });
  return metrics;
}

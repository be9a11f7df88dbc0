import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { DeliveryEngine } from '../delivery/engine.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { every } from '../scheduling/timing.js';
import { SYNC_SCHEDULE_KIND } from '../store/cohort-sync-repo.js';
import type { Store } from '../store/database.js';
import { scheduleNow } from '../store/schedules-repo.js';
import { SyncAdmin } from './admin.js';
import type { SyncEvents } from './notices.js';
import { PAGE_OWNER, PageQueue } from './pages.js';
import { SyncRunner } from './runner.js';
import { SWEEP_KIND, syncSweep } from './sweep.js';
import { cohortSyncPolicy } from './wire.js';

/**
 * Cohort sync plugged into the engine through its seams: Mixpanel's retry policy, the owner of its
 * page deliveries, the handler of each sync's schedule and the sweep's. Nothing else in the
 * engine knows about cohort syncs.
 */
export function cohortSyncSurface(deps: { store: Store; engine: DeliveryEngine; scheduler: Scheduler; config: Config; log: Logger; events?: SyncEvents; metrics?: Metrics }): { admin: SyncAdmin } {
  const { store, engine, scheduler, config, log, events } = deps;
  engine.policies.register(cohortSyncPolicy(config.delivery));
  const pages = new PageQueue({
    dialect: store.dialect,
    outbox: engine.outbox,
    config: config.sync,
    superseded: async (trx, now) => void (await scheduleNow(trx, SWEEP_KIND, '', now)),
    events,
  });
  engine.owners.register(PAGE_OWNER, pages);
  scheduler.register(SYNC_SCHEDULE_KIND, new SyncRunner({ store, outbox: engine.outbox, pages, config: config.sync, log, events, wake: () => engine.dispatcher.wake(true) }));
  scheduler.register(SWEEP_KIND, syncSweep(store, config.retention, deps.metrics), { singleton: every(config.sync.sweepIntervalMs) });
  return { admin: new SyncAdmin({ store, scheduler, config: config.sync }) };
}

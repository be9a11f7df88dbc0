import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { every } from '../scheduling/timing.js';
import type { Store } from '../store/database.js';
import { findSchedule } from '../store/schedules-repo.js';
import { storageReport, type StorageReport } from '../store/storage-repo.js';
import { Pruner, RETENTION_KIND, type PassReport } from './pruner.js';

/** What GET /api/v1/storage answers. */
export interface StorageStatus extends StorageReport {
  dialect: Store['dialect'];
  /** How long each kind is kept (ms; 0: for ever). */
  retention: Record<string, number>;
  nextPruningAt: number | null;
  lastPruning: PassReport | null;
}

export interface RetentionSurface {
  pruner: Pruner;
  status(now: number): Promise<StorageStatus>;
}

/** Retention plugged in: the pruner is a singleton schedule; the storage report reads what it would remove. */
export function retentionSurface(deps: { store: Store; scheduler: Scheduler; config: Config; metrics: Metrics; log: Logger }): RetentionSurface {
  const { store, scheduler, config } = deps;
  const pruner = new Pruner({ store, config: config.retention, metrics: deps.metrics, log: deps.log });
  scheduler.register(RETENTION_KIND, pruner, { singleton: every(config.retention.intervalMs) });
  return {
    pruner,
    async status(now) {
      const [report, schedule] = await Promise.all([storageReport(store, pruner.horizons(now)), findSchedule(store.db, RETENTION_KIND, '')]);
      return {
        dialect: store.dialect,
        ...report,
        retention: Object.fromEntries(pruner.kinds.map((k) => [k.name, k.keepMs])),
        nextPruningAt: schedule?.next_run_at ?? null,
        lastPruning: pruner.last ?? null,
      };
    },
  };
}

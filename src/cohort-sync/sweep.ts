import { performance } from 'node:perf_hooks';
import type { RetentionConfig } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { ScheduleHandler } from '../scheduling/scheduler.js';
import { sliceOptions, Slices } from '../scheduling/slices.js';
import type { Store } from '../store/database.js';
import { staleRunSlice } from '../store/retention-repo.js';

export const SWEEP_KIND = 'cohort-sync-sweep';

/**
 * Drops the snapshots and pages no sync will read again: those of runs superseded as a base or
 * abandoned, which the transaction that superseded them marked stale (so nothing searches every
 * run for them). A scheduled job (every sweepIntervalMs, and due at once when a run supersedes
 * another), so one process does it, off the path of any run. A 1,000,000-member snapshot is a
 * thousand chunks of a thousand ids: it goes in slices paced as retention's are, so no transaction
 * holds SQLite's writer long, and a run that used its budget comes back for the rest.
 */
export function syncSweep(store: Store, config: RetentionConfig, metrics?: Metrics): ScheduleHandler {
  const slices = new Slices(store, sliceOptions(config), metrics?.observeSlice);
  return {
    async run() {
      const done = await slices.run('sync_snapshots', (trx, limit) => staleRunSlice(trx, limit), performance.now() + config.runBudgetMs);
      return done ? undefined : 'more';
    },
  };
}

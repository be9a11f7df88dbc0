import type { ScheduleHandler } from '../scheduling/scheduler.js';
import type { Store } from '../store/database.js';
import { dropStaleRun } from '../store/sync-pages-repo.js';

export const SWEEP_KIND = 'cohort-sync-sweep';

/**
 * Drops the snapshots and pages no sync will read again: those of runs superseded as a base or
 * abandoned, which the transaction that superseded them marked stale (so nothing searches every
 * run for them). One run per transaction, so none holds SQLite's writer long. A scheduled job
 * (every sweepIntervalMs, and due at once when a run supersedes another), so one process does it,
 * off the path of any run.
 */
export function syncSweep(store: Store): ScheduleHandler {
  return {
    async run() {
      while (await dropStaleRun(store.db));
    },
  };
}

import { performance } from 'node:perf_hooks';
import type { Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { RetentionConfig } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { ScheduledRun, ScheduleHandler } from '../scheduling/scheduler.js';
import { sliceOptions, Slices } from '../scheduling/slices.js';
import type { Store } from '../store/database.js';
import {
  alertChecksSlice,
  bodiesSlice,
  deliveriesSlice,
  dailyCountsSlice,
  eventsSlice,
  messageBatchesSlice,
  subscriptionEventsSlice,
  syncRunsSlice,
  type Slice,
  type SliceOf,
} from '../store/retention-repo.js';
import type { Database } from '../store/schema.js';
import { readSetting, writeSetting } from '../store/settings-repo.js';

export const RETENTION_KIND = 'retention';

const DAY = 86_400_000;
/** Where emptying bodies stands: kept across passes, since bodies go long before their rows (7 of 30 days by default). */
const BODIES_CURSOR = 'retention.bodies_cursor';

type Trx = Transaction<Database>;

/** What one kind of pruning removes, and how long it keeps it ("Retention" in docs/architecture.md). */
interface Kind {
  name: string;
  keepMs: number;
  /** Its horizon is the start of a UTC day (events and their daily counts leave by whole days). */
  wholeDays: boolean;
  /** A slice below `horizon`; `pass` holds its cursor between slices. */
  slice(trx: Trx, limit: number, horizon: number, pass: Pass): Promise<Slice<unknown>>;
}

/** A kind whose slices carry a cursor from one to the next, in the pass. */
function kind<C>(name: string, keepMs: number, slice: SliceOf<C>, wholeDays = false): Kind {
  return {
    name,
    keepMs,
    wholeDays,
    async slice(trx, limit, horizon, pass) {
      const s = await slice(trx, pass.cursors.get(name) as C | undefined, limit, horizon);
      pass.cursors.set(name, s.cursor);
      return s;
    },
  };
}

interface Pass {
  started: number;
  /** The kind being pruned (index into kinds). */
  at: number;
  cursors: Map<string, unknown>;
  removed: Record<string, number>;
  slices: number;
  longestMs: number;
}

/** One finished pass, for GET /api/v1/storage. */
export interface PassReport {
  startedAt: number;
  finishedAt: number;
  removed: Record<string, number>;
  slices: number;
  longestSliceMs: number;
}

/**
 * Pruning (the singleton schedule 'retention', every COHORTCAST_RETENTION_INTERVAL): each kind of
 * finished work older than its horizon, in slices (scheduling/slices.ts) of one short transaction
 * each, each followed by a pause as long, so SQLite's one writer is never held long. A run does at most
 * COHORTCAST_RETENTION_RUN_BUDGET_MS of work and answers 'more' (the scheduler runs it again after
 * the other due runs); a pass's horizons are fixed when it starts. On PostgreSQL the schedule's
 * lease makes one process prune at a time.
 */
export class Pruner implements ScheduleHandler {
  readonly kinds: Kind[];
  #pass: Pass | undefined;
  last: PassReport | undefined;
  /** Kept from pass to pass: each kind's rows per slice, as learnt. */
  readonly #slices: Slices;

  constructor(private readonly deps: { store: Store; config: RetentionConfig; metrics: Metrics; log: Logger }) {
    const c = deps.config;
    this.#slices = new Slices(deps.store, sliceOptions(c), (kind, ms, removed) => {
      deps.metrics.observeSlice(kind, ms, removed);
      const pass = this.#pass;
      if (!pass) return;
      pass.slices++;
      pass.longestMs = Math.max(pass.longestMs, ms);
      pass.removed[kind] = (pass.removed[kind] ?? 0) + removed;
    });
    this.kinds = [
      // The bodies' cursor is kept across passes (and processes) in settings: they go long before their rows.
      kind<number>('delivery_bodies', c.bodiesMs && c.deliveriesMs ? Math.min(c.bodiesMs, c.deliveriesMs) : c.bodiesMs, async (trx, cursor, limit, horizon) => {
        const s = await bodiesSlice(trx, cursor ?? Number((await readSetting(trx, BODIES_CURSOR)) ?? 0), limit, horizon, this.#pass!.started);
        await writeSetting(trx, BODIES_CURSOR, String(s.cursor));
        return s;
      }),
      kind('deliveries', c.deliveriesMs, deliveriesSlice),
      kind('message_batches', c.deliveriesMs, messageBatchesSlice),
      kind('subscription_events', c.subscriptionEventsMs, subscriptionEventsSlice),
      kind('sync_runs', c.syncRunsMs, syncRunsSlice),
      kind('alert_checks', c.alertChecksMs, alertChecksSlice),
      kind('events', c.eventsMs, eventsSlice, true),
      kind('event_daily_counts', c.eventsMs, dailyCountsSlice, true),
    ];
  }

  /** The horizon of each kind that prunes, at `now`. */
  horizons(now: number): Record<string, number> {
    return Object.fromEntries(this.kinds.filter((k) => k.keepMs > 0).map((k) => [k.name, k.wholeDays ? Math.floor((now - k.keepMs) / DAY) * DAY : now - k.keepMs]));
  }

  async run(job: ScheduledRun): Promise<void | 'more'> {
    const { config } = this.deps;
    const deadline = performance.now() + config.runBudgetMs;
    const pass = (this.#pass ??= {
      started: job.now,
      at: 0,
      cursors: new Map(),
      removed: {} as Record<string, number>,
      slices: 0,
      longestMs: 0,
    });
    const horizons = this.horizons(pass.started);
    try {
      for (; pass.at < this.kinds.length; pass.at++) {
        const kind = this.kinds[pass.at]!;
        const horizon = horizons[kind.name];
        if (horizon === undefined) continue;
        const done = await this.#slices.run(kind.name, (trx, limit) => kind.slice(trx, limit, horizon, pass), deadline);
        if (!done) return 'more';
      }
    } catch (err) {
      // The next run starts a pass afresh (cursors are re-read): nothing is skipped.
      this.#pass = undefined;
      throw err;
    }
    this.#pass = undefined;
    this.last = { startedAt: pass.started, finishedAt: job.now, removed: pass.removed, slices: pass.slices, longestSliceMs: pass.longestMs };
    this.deps.log.info({ removed: pass.removed, slices: pass.slices, longestSliceMs: Math.round(pass.longestMs * 10) / 10 }, 'retention pass finished');
  }
}

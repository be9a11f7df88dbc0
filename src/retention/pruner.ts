import { performance } from 'node:perf_hooks';
import type { Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { RetentionConfig } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { ScheduledRun, ScheduleHandler } from '../scheduling/scheduler.js';
import { Slices } from '../scheduling/slices.js';
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
  type CountsCursor,
  type Slice,
} from '../store/retention-repo.js';
import type { Database } from '../store/schema.js';
import { readSetting, writeSetting } from '../store/settings-repo.js';

export const RETENTION_KIND = 'retention';

const DAY = 86_400_000;
/** Where emptying bodies stands: kept across passes, since bodies go long before their rows (7 of 30 days by default). */
const BODIES_CURSOR = 'retention.bodies_cursor';

type Trx = Transaction<Database>;

/** What one kind of pruning removes, and how long it keeps it (retention/README in docs/architecture.md). */
interface Kind {
  name: string;
  keepMs: number;
  /** A slice below `horizon`; `pass` holds its cursor between slices. */
  slice(trx: Trx, limit: number, horizon: number, pass: Pass): Promise<Slice>;
}

interface Pass {
  started: number;
  /** The kind being pruned (index into kinds). */
  at: number;
  cursors: Map<string, number>;
  project: number | null;
  counts: CountsCursor | null;
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
 * each, with a pause between them, so SQLite's one writer is never held long. A run does at most
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
    this.#slices = new Slices(deps.store, { targetMs: c.sliceTargetMs, initialRows: c.sliceRows, maxRows: c.maxSliceRows, pauseMs: c.slicePauseMs }, (kind, ms, removed) => {
      deps.metrics.observeSlice(kind, ms, removed);
      const pass = this.#pass;
      if (!pass) return;
      pass.slices++;
      pass.longestMs = Math.max(pass.longestMs, ms);
      pass.removed[kind] = (pass.removed[kind] ?? 0) + removed;
    });
    const cursor = (pass: Pass, name: string) => pass.cursors.get(name) ?? 0;
    const moved = (pass: Pass, name: string, s: Slice) => (pass.cursors.set(name, s.cursor), s);
    this.kinds = [
      {
        name: 'delivery_bodies',
        keepMs: c.bodiesMs && c.deliveriesMs ? Math.min(c.bodiesMs, c.deliveriesMs) : c.bodiesMs,
        slice: async (trx, limit, horizon, pass) => {
          if (!pass.cursors.has('delivery_bodies')) pass.cursors.set('delivery_bodies', Number((await readSetting(trx, BODIES_CURSOR)) ?? 0));
          const s = await bodiesSlice(trx, cursor(pass, 'delivery_bodies'), limit, horizon, pass.started);
          await writeSetting(trx, BODIES_CURSOR, String(s.cursor));
          return moved(pass, 'delivery_bodies', s);
        },
      },
      { name: 'deliveries', keepMs: c.deliveriesMs, slice: async (trx, limit, horizon, pass) => moved(pass, 'deliveries', await deliveriesSlice(trx, cursor(pass, 'deliveries'), limit, horizon)) },
      { name: 'message_batches', keepMs: c.deliveriesMs, slice: async (trx, limit, horizon, pass) => moved(pass, 'message_batches', await messageBatchesSlice(trx, cursor(pass, 'message_batches'), limit, horizon)) },
      { name: 'subscription_events', keepMs: c.subscriptionEventsMs, slice: async (trx, limit, horizon, pass) => moved(pass, 'subscription_events', await subscriptionEventsSlice(trx, cursor(pass, 'subscription_events'), limit, horizon)) },
      { name: 'sync_runs', keepMs: c.syncRunsMs, slice: (trx, limit, horizon) => syncRunsSlice(trx, limit, horizon) },
      { name: 'alert_checks', keepMs: c.alertChecksMs, slice: async (trx, limit, horizon, pass) => moved(pass, 'alert_checks', await alertChecksSlice(trx, cursor(pass, 'alert_checks'), limit, horizon)) },
      // Whole UTC days: a day's events and its daily counts go together.
      {
        name: 'events',
        keepMs: c.eventsMs,
        slice: async (trx, limit, horizon, pass) => {
          const r = await eventsSlice(trx, pass.project, limit, horizon / DAY);
          pass.project = r.next;
          return { removed: r.removed, cursor: 0, done: r.next === null };
        },
      },
      {
        name: 'event_daily_counts',
        keepMs: c.eventsMs,
        slice: async (trx, limit, horizon, pass) => {
          const r = await dailyCountsSlice(trx, pass.counts, limit, horizon / DAY);
          pass.counts = r.next;
          return { removed: r.removed, cursor: 0, done: r.next === null };
        },
      },
    ];
  }

  /** The horizon of each kind that prunes, at `now`. */
  horizons(now: number): Record<string, number> {
    return Object.fromEntries(this.kinds.filter((k) => k.keepMs > 0).map((k) => [k.name, k.name.startsWith('event') ? Math.floor((now - k.keepMs) / DAY) * DAY : now - k.keepMs]));
  }

  async run(job: ScheduledRun): Promise<void | 'more'> {
    const { config } = this.deps;
    const deadline = performance.now() + config.runBudgetMs;
    const pass = (this.#pass ??= {
      started: job.now,
      at: 0,
      cursors: new Map(),
      project: null,
      counts: null,
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

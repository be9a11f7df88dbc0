import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { SchedulerConfig } from '../config.js';
import type { Store } from '../store/database.js';
import { claimSchedules, completeSchedule, renewScheduleLease, type ScheduleRow } from '../store/leases.js';
import { putSchedule, scheduleNow, type ScheduleTiming } from '../store/schedules-repo.js';
import { nextRun, tooLate } from './timing.js';

/** One run of a schedule, as its handler gets it. */
export interface ScheduledRun {
  kind: string;
  key: string;
  /** When it was due. */
  planned: number;
  /** When it started. */
  now: number;
}

/** What a surface registers for its kind of schedule, as it registers an owner for its deliveries. */
export interface ScheduleHandler {
  /**
   * Does the run's work. Work too long for one go (pruning, dropping snapshots) does a share and
   * answers 'more': it runs again as soon as the other due runs have had their turn.
   */
  run(job: ScheduledRun): Promise<void | 'more'>;
}

export interface SchedulerEvents {
  /** A look for due runs ended; `ran` runs were run (or skipped as too late) in it. */
  polled: [{ ran: number }];
  /** One run ended: with the error its handler threw, or skipped as too late. */
  ran: [{ kind: string; key: string; error: string | null; skipped: boolean }];
}

/** Runs in one look at most, so a look always ends and stop() is never kept waiting for long. */
const RUNS_PER_POLL = 100;

/**
 * Runs what is due in the schedules table. Every process polls it (each pollIntervalMs, and at
 * once when woken); a run is claimed with a lease, one at a time, so exactly one process runs each
 * due run, even with many on one PostgreSQL; the lease is renewed while the handler works, and a
 * process that dies leaves it to expire and the run to another. A handler that throws is tried
 * again after errorRetryMs (or at its next run, if sooner). Runs that no process was up for are
 * caught up once (timing.ts).
 */
export class Scheduler {
  readonly events = new EventEmitter<SchedulerEvents>();
  readonly #handlers = new Map<string, { handler: ScheduleHandler; singleton?: ScheduleTiming }>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again: Promise<void> | undefined;
  #stopped = false;

  constructor(private readonly deps: { store: Store; config: SchedulerConfig; log: Logger; worker: string; /** The clock schedules are due by (tests run calendars on their own). */ now?: () => number }) {}

  #now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /**
   * Handles the schedules of `kind`. A singleton (one schedule of that kind, key '') is created
   * at start, or given this timing if it exists.
   */
  register(kind: string, handler: ScheduleHandler, opts: { singleton?: ScheduleTiming } = {}): void {
    if (this.#handlers.has(kind)) throw new Error(`a handler for "${kind}" schedules is already registered`);
    this.#handlers.set(kind, { handler, ...opts });
  }

  async start(): Promise<void> {
    const now = this.#now();
    for (const [kind, { singleton }] of this.#handlers) {
      if (singleton) await putSchedule(this.deps.store.db, { kind, key: '', timing: singleton, nextRunAt: nextRun(singleton, now, now) }, now);
    }
    this.#timer = setInterval(() => void this.tick(), this.deps.config.pollIntervalMs);
    this.#timer.unref();
    void this.tick();
  }

  /** Stops polling and waits for the run in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#again;
    await this.#running;
  }

  /** Makes a schedule due now and looks for due runs; resolves once this process has run what it claimed. */
  async runNow(kind: string, key: string): Promise<boolean> {
    const exists = await scheduleNow(this.deps.store.db, kind, key, this.#now());
    if (exists) await this.tick();
    return exists;
  }

  /**
   * Looks for due runs and runs them; resolves when the runs this look claimed have ended. Asked
   * for while a look is going, another look follows it (what became due meanwhile is not missed).
   */
  tick(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running) {
      this.#again ??= this.#running.then(() => {
        this.#again = undefined;
        return this.tick();
      });
      return this.#again;
    }
    this.#running = this.#poll()
      .catch((err) => this.deps.log.error({ err }, 'looking for due schedules failed; trying again at the next poll'))
      .finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #poll(): Promise<void> {
    const { store, config, worker } = this.deps;
    const kinds = [...this.#handlers.keys()];
    let ran = 0;
    while (ran < RUNS_PER_POLL && !this.#stopped) {
      const [job] = await claimSchedules(store, kinds, 1, worker, this.#now(), config.leaseMs);
      if (!job) break;
      await this.#run(job);
      ran++;
    }
    this.events.emit('polled', { ran });
  }

  async #run(job: ScheduleRow & { lease_token: string }): Promise<void> {
    const { store, config, log } = this.deps;
    const planned = job.next_run_at ?? this.#now();
    const started = this.#now();
    // `at` is the time the next run was computed from, recorded as the finish: one reading of the clock.
    const done = (error: string | null, skipped: boolean, next: number | null, at: number) =>
      completeSchedule(store, { id: job.id, token: job.lease_token, planned: job.next_run_at, next, missed: skipped ? 1 : 0, error }, at).then((held) => {
        if (!held) log.warn({ kind: job.kind, key: job.key }, 'a schedule run outlasted its lease; another process owns the schedule now');
        this.events.emit('ran', { kind: job.kind, key: job.key, error, skipped });
      });
    if (tooLate(job, planned, started)) {
      log.warn({ kind: job.kind, key: job.key, planned: new Date(planned).toISOString() }, 'a scheduled run was found later than its max lateness and skipped');
      return done(null, true, nextRun(job, planned, started), started);
    }
    // Renewed while the handler works, so a long run keeps its lease; a dead process's lapses.
    const renewal = setInterval(() => {
      void renewScheduleLease(store, job.id, job.lease_token, this.#now(), config.leaseMs).catch((err) => log.warn({ err, kind: job.kind }, 'renewing a schedule lease failed'));
    }, Math.max(1, Math.floor(config.leaseMs / 3)));
    let error: string | null = null;
    let more = false;
    try {
      more = (await this.#handlers.get(job.kind)!.handler.run({ kind: job.kind, key: job.key, planned, now: started })) === 'more';
    } catch (err) {
      error = (err as Error).message ?? String(err);
      log.error({ err, kind: job.kind, key: job.key }, `a scheduled ${job.kind} run failed; trying again in ${config.errorRetryMs} ms`);
    } finally {
      clearInterval(renewal);
    }
    const finished = this.#now();
    const next = more ? finished : nextRun(job, planned, finished);
    await done(error, false, error === null ? next : Math.min(finished + config.errorRetryMs, next ?? Infinity), finished);
  }
}

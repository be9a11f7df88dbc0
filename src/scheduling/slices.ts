import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Transaction } from 'kysely';
import type { RetentionConfig } from '../config.js';
import type { Store } from '../store/database.js';
import type { Database } from '../store/schema.js';

/** One slice of some work: at most `limit` rows, in the transaction it is given. */
export type SliceStep = (trx: Transaction<Database>, limit: number) => Promise<{ removed: number; done: boolean }>;

export interface SliceOptions {
  /** A slice aims to hold the database this long at most. */
  targetMs: number;
  initialRows: number;
  maxRows: number;
  /** Least pause between slices (each is followed by one at least as long as itself): SQLite's one writer goes to whoever waits (ingestion, delivery). */
  pauseMs: number;
}

/** The pacing retention's settings give (pruning and dropping superseded snapshots share it). */
export const sliceOptions = (c: RetentionConfig): SliceOptions => ({ targetMs: c.sliceTargetMs, initialRows: c.sliceRows, maxRows: c.maxSliceRows, pauseMs: c.slicePauseMs });

/**
 * Long background work (retention, dropping old snapshots) done as many short transactions. Each
 * kind of work has its own rows per slice, aimed after each slice at half the target from the time
 * per row just measured, so a slice stays under the target whatever a row costs (a snapshot chunk
 * weighs a thousand ids, an attempt row a few hundred bytes). The time measured is
 * from the transaction's first statement to its commit: what the slice held the database for.
 */
export class Slices {
  readonly #rows = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly opts: SliceOptions,
    private readonly observe: (kind: string, ms: number, removed: number) => void = () => {},
  ) {}

  /** Runs slices of `kind` until one says it is done or `deadline` (performance.now()) passes; answers whether it is done. */
  async run(kind: string, step: SliceStep, deadline: number): Promise<boolean> {
    for (;;) {
      const limit = this.#rows.get(kind) ?? this.opts.initialRows;
      let began = 0;
      const result = await this.store.db.transaction().execute((trx) => {
        began = performance.now();
        return step(trx, limit);
      });
      const ms = performance.now() - began;
      this.observe(kind, ms, result.removed);
      // Aim the next slice at half the target (room for a slower one), moving by at most half again
      // or half down at a time, so one fast or slow slice does not swing the size.
      const aimed = Math.floor((limit * this.opts.targetMs) / 2 / Math.max(ms, 0.01));
      this.#rows.set(kind, Math.max(1, Math.min(this.opts.maxRows, Math.floor(limit * 1.5), Math.max(Math.floor(limit / 2), aimed))));
      if (result.done) return true;
      if (performance.now() >= deadline) return false;
      // At least as long as the slice took: background work never has more than half the writer
      // (and, on SQLite, whose statements run on the event loop, half of the main thread).
      await sleep(Math.max(this.opts.pauseMs, ms));
    }
  }
}

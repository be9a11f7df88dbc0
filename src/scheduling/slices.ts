import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Transaction } from 'kysely';
import type { Store } from '../store/database.js';
import type { Database } from '../store/schema.js';

/** One slice of some work: at most `limit` rows, in the transaction it is given. */
export type SliceStep = (trx: Transaction<Database>, limit: number) => Promise<{ removed: number; done: boolean }>;

export interface SliceOptions {
  /** A slice aims to hold the database this long at most. */
  targetMs: number;
  initialRows: number;
  maxRows: number;
  /** Pause between slices: SQLite's one writer goes to whoever waits (ingestion, delivery). */
  pauseMs: number;
}

/**
 * Long background work (retention, dropping old snapshots) done as many short transactions. Each
 * kind of work has its own rows per slice, halved when a slice took more than half the target and
 * doubled when it took less than a quarter, so a slice stays under the target whatever a row costs
 * (a snapshot chunk weighs a thousand ids, an attempt row a few hundred bytes). The time measured is
 * from the transaction's first statement to its commit: what the slice held the database for.
 */
export class Slices {
  readonly #rows = new Map<string, number>();
  /** The longest slice seen, and how many ran. */
  longestMs = 0;
  count = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: SliceOptions,
    private readonly observe: (kind: string, ms: number, removed: number) => void = () => {},
  ) {}

  /** Runs slices of `kind` until one says it is done or `deadline` (performance.now()) passes; answers whether it is done. */
  async run(kind: string, step: SliceStep, deadline: number, stopped: () => boolean = () => false): Promise<boolean> {
    for (;;) {
      const limit = this.#rows.get(kind) ?? this.opts.initialRows;
      let began = 0;
      const result = await this.store.db.transaction().execute((trx) => {
        began = performance.now();
        return step(trx, limit);
      });
      const ms = performance.now() - began;
      this.count++;
      this.longestMs = Math.max(this.longestMs, ms);
      this.observe(kind, ms, result.removed);
      if (ms > this.opts.targetMs / 2) this.#rows.set(kind, Math.max(1, Math.floor(limit / 2)));
      else if (ms < this.opts.targetMs / 4) this.#rows.set(kind, Math.min(this.opts.maxRows, limit * 2));
      if (result.done) return true;
      if (stopped() || performance.now() >= deadline) return false;
      if (this.opts.pauseMs > 0) await sleep(this.opts.pauseMs);
    }
  }
}

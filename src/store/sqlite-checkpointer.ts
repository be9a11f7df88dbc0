import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import type { Store } from './database.js';

interface Checkpointer {
  /** Stops the thread after closing its connection. */
  stop(): Promise<void>;
}

/**
 * Starts the checkpoint thread (sqlite-checkpoint.worker.js). Every connection of ours runs with
 * wal_autocheckpoint = 0; should the thread fail, the main connection takes over the checkpoints.
 */
export function startCheckpointer(
  raw: BetterSqlite3.Database,
  settings: { file: string; synchronous: string; busyTimeoutMs: number; checkpointIntervalMs: number },
): Checkpointer {
  const worker = new Worker(new URL('./sqlite-checkpoint.worker.js', import.meta.url), { workerData: settings });
  worker.unref();
  worker.on('error', () => {
    if (raw.open) raw.pragma('wal_autocheckpoint = 1000');
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    async stop() {
      worker.ref();
      worker.postMessage({ type: 'close' });
      await exited;
    },
  };
}

/**
 * For a writer that commits without pause (an import): the checkpoint thread finishes a checkpoint
 * only between writes, so without a pause the WAL is never started again and grows with every
 * commit (60 GB over a 10,000,000-event import). Past `maxBytes`, this checkpoints it whole and
 * truncates it, between two of the writer's transactions. Not done when another connection still
 * reads an older snapshot (the next call tries again). Nothing to do on PostgreSQL.
 */
export function restartWalPast(store: Store, maxBytes: number): void {
  if (store.dialect !== 'sqlite') return;
  const size = fs.statSync(`${store.location}-wal`, { throwIfNoEntry: false })?.size ?? 0;
  if (size > maxBytes) store.raw.pragma('wal_checkpoint(TRUNCATE)');
}

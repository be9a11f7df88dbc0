import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';

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

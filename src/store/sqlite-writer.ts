import { Worker } from 'node:worker_threads';
import type { EventBatch, WriteResult } from './ingest-writer.js';

export interface SqliteWriterSettings {
  file: string;
  synchronous: 'NORMAL' | 'FULL';
  busyTimeoutMs: number;
  checkpointIntervalMs: number;
  /** At most this many requests share one transaction. */
  maxGroup: number;
}

type Done = { type: 'done'; results: ({ id: number; result: WriteResult } | { id: number; error: string })[] };

/**
 * The main thread's handle on the SQLite writer thread (sqlite-writer.worker.js): posts each
 * request's events and resolves once they are committed. If the thread dies, the writes in
 * flight fail (their requests get an error, so clients retry) and the next write starts a new one.
 */
export class SqliteWriterThread {
  #worker: Worker | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #pending = new Map<number, { resolve: (r: WriteResult) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #closed = false;

  constructor(private readonly settings: SqliteWriterSettings) {}

  start(): void {
    if (this.#worker || this.#closed) return;
    const worker = new Worker(new URL('./sqlite-writer.worker.js', import.meta.url), { workerData: this.settings });
    // Idle, the thread must not keep the process alive; requests in flight do that.
    worker.unref();
    worker.on('message', (msg: Done) => {
      for (const r of msg.results) {
        const waiter = this.#pending.get(r.id);
        this.#pending.delete(r.id);
        if ('error' in r) waiter?.reject(new Error(`storing events failed: ${r.error}`));
        else waiter?.resolve(r.result);
      }
    });
    worker.on('error', (err) => this.#failAll(err));
    this.#exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        if (this.#worker === worker) this.#worker = undefined;
        this.#failAll(new Error(`the SQLite writer thread exited with code ${code}`));
        resolve();
      }),
    );
    this.#worker = worker;
  }

  write(batches: EventBatch[], receivedAt: number): Promise<WriteResult> {
    if (this.#closed) return Promise.reject(new Error('the database is closed'));
    this.start();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker!.postMessage({ type: 'write', id, batches, receivedAt });
    });
  }

  /** Writes what is queued, closes the thread's connection and waits for it to exit. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    if (!worker) return;
    worker.ref();
    worker.postMessage({ type: 'close' });
    await this.#exited;
  }

  #failAll(err: Error) {
    for (const waiter of this.#pending.values()) waiter.reject(err);
    this.#pending.clear();
  }
}

import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { DestinationLoad, OutboundRequest, SendOutcome, Sender } from './http-sender.js';
import type { FromSenderThread, SenderThreadData, ToSenderThread } from './sender-thread.js';

/**
 * Under the test runner this module is TypeScript source, which a worker thread cannot load: the
 * thread then runs the build of the same file (`npm test` builds first).
 */
function threadEntry(): URL {
  return import.meta.url.endsWith('.ts') ? new URL('../../dist/delivery/sender-thread.js', import.meta.url) : new URL('./sender-thread.js', import.meta.url);
}

/**
 * A Sender whose HTTP runs on a thread of its own: signing, undici and reading replies cost about
 * as much CPU as claiming and recording, so the two halves run side by side on two cores.
 * Requests started in the same turn of the event loop cross in one message, and so do results.
 * A thread that dies fails its requests in flight (as network errors, retried by their policy)
 * and is started again by the next request.
 */
export class ThreadedSender implements Sender {
  #worker: Worker | undefined;
  #nextId = 0;
  readonly #waiting = new Map<number, (outcome: SendOutcome) => void>();
  readonly #loads = new Map<number, (load: DestinationLoad) => void>();
  #outbox: [number, OutboundRequest][] = [];
  #posting = false;

  constructor(
    private readonly data: SenderThreadData,
    private readonly log: Logger,
  ) {}

  send(req: OutboundRequest): Promise<SendOutcome> {
    const id = ++this.#nextId;
    this.#outbox.push([id, req]);
    if (!this.#posting) {
      this.#posting = true;
      queueMicrotask(() => this.#post());
    }
    return new Promise((resolve) => this.#waiting.set(id, resolve));
  }

  withdraw(destinationId: number): void {
    // After any sends of this turn, so those are withdrawn too.
    if (this.#outbox.length > 0) this.#post();
    this.#worker?.postMessage({ type: 'withdraw', destinationId } satisfies ToSenderThread);
  }

  /** Asked after any sends of this turn, so those count. A thread that is not running holds nothing. */
  load(destinationId: number): Promise<DestinationLoad> {
    if (!this.#worker) return Promise.resolve({ active: 0, waiting: 0 });
    if (this.#outbox.length > 0) this.#post();
    const id = ++this.#nextId;
    this.#worker.postMessage({ type: 'load', id, destinationId } satisfies ToSenderThread);
    return new Promise((resolve) => this.#loads.set(id, resolve));
  }

  #post(): void {
    this.#posting = false;
    if (this.#outbox.length === 0) return;
    const requests = this.#outbox;
    this.#outbox = [];
    this.#thread().postMessage({ type: 'send', requests } satisfies ToSenderThread);
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(threadEntry(), { workerData: this.data });
    worker.on('message', (msg: FromSenderThread) => {
      if (msg.type === 'load') {
        this.#loads.get(msg.id)?.({ ...msg.load });
        this.#loads.delete(msg.id);
        return;
      }
      if (msg.type !== 'results') return;
      for (const [id, result] of msg.results) {
        const resolve = this.#waiting.get(id);
        this.#waiting.delete(id);
        resolve?.(result);
      }
    });
    worker.on('error', (err) => this.log.error({ err }, 'sender thread failed; its requests in flight count as network errors'));
    worker.on('exit', () => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const [id, resolve] of this.#waiting) {
        this.#waiting.delete(id);
        resolve({ body: '', truncated: false, error: { kind: 'network', message: 'the sender thread stopped before the answer came' }, durationMs: 0 });
      }
      for (const [id, resolve] of this.#loads) {
        this.#loads.delete(id);
        resolve({ active: 0, waiting: 0 });
      }
    });
    this.#worker = worker;
    return worker;
  }

  /** Lets requests in flight end (the dispatcher waits for them first), then stops the thread. */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = undefined;
    await new Promise<void>((resolve) => {
      worker.on('message', (msg: FromSenderThread) => msg.type === 'closed' && resolve());
      worker.once('exit', () => resolve());
      worker.postMessage({ type: 'close' } satisfies ToSenderThread);
    });
    await worker.terminate();
  }
}

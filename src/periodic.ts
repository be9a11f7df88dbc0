import type { Logger } from 'pino';

/**
 * Work run every `intervalMs` (and on demand), never twice at once in one process: a tick asked
 * for while one runs joins it. Failures are logged and the next tick tries again.
 */
export class PeriodicTask {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly work: () => Promise<void>,
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  start(): void {
    this.#timer = setInterval(() => void this.run(), this.intervalMs);
    this.#timer.unref();
  }

  run(): Promise<void> {
    this.#running ??= this.work()
      .catch((err) => this.log.error({ err }, `${this.what} failed; trying again at the next tick`))
      .finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Stops the timer and waits for a tick in progress. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}

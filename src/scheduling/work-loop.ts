import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';

/**
 * Work that is looked for every `intervalMs`, and at once when this process made some (wake): one
 * pass at a time, passes repeated while they find more. For work claimed row by row (FOR UPDATE
 * SKIP LOCKED on PostgreSQL), where several processes may each take a share; work that exactly one
 * process must run at a time is a schedule instead (scheduler.ts).
 */
export class WorkLoop {
  readonly events = new EventEmitter<{ idle: [] }>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #again = false;
  #stopped = true;
  #pass: Promise<void> | undefined;

  constructor(
    private readonly what: string,
    private readonly intervalMs: number,
    /** One pass; answers whether there may be more right away. */
    private readonly work: () => Promise<boolean>,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.#stopped = false;
    this.wake();
  }

  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = true;
    this.#pass = this.#loop().finally(() => {
      this.#running = false;
      if (this.#stopped) return;
      if (this.#again) {
        this.#again = false;
        this.wake();
        return;
      }
      this.events.emit('idle');
      this.#timer = setTimeout(() => this.wake(), this.intervalMs);
      this.#timer.unref();
    });
  }

  async #loop(): Promise<void> {
    try {
      while (!this.#stopped && (await this.work()));
    } catch (err) {
      this.log.error({ err }, `${this.what} failed; trying again at the next poll`);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#pass;
  }
}

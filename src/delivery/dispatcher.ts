import crypto from 'node:crypto';
import os from 'node:os';
import type { Logger } from 'pino';
import type { DeliveryConfig } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/database.js';
import { cancelDelivery, claimDeliveries, claimDelivery, dueConnections, releaseLeases, renewLease, type ClaimedDelivery } from '../store/outbox-repo.js';
import { classify, scheduledDelay, type AttemptResult, type Verdict } from './classify.js';
import type { ConnectionDirectory, LiveConnection } from './connections.js';
import { finishAttempts, type Completion } from './finish.js';
import type { Sender } from './http-sender.js';
import { policies, isPolicyName, type RetryPolicy } from './policies.js';
import { buildRequest } from './request.js';
import type { OwnerRegistry } from './owners.js';

export interface DispatcherDeps {
  store: Store;
  sender: Sender;
  connections: ConnectionDirectory;
  owners: OwnerRegistry;
  config: DeliveryConfig;
  metrics: Metrics;
  log: Logger;
  /** Batches of attempts recorded at once: 1 on SQLite (one writer), more on PostgreSQL. */
  recorders: number;
}

/**
 * Claims due deliveries with leases, sends them, and records each attempt. Work is claimed per
 * destination, at most two rounds of its concurrency, and sent no faster than its free slots, so
 * one slow or hanging receiver holds only its own slots; the rest keep flowing. Attempts are
 * recorded in batches (one transaction each).
 */
export class Dispatcher {
  /** Names this process's leases: host, pid and a random part (pids repeat across restarts). */
  readonly worker = `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
  readonly #policies: Record<string, RetryPolicy>;
  /** Handed to the sender and not answered yet, per destination: on the wire or waiting there for a slot. */
  readonly #sending = new Map<number, number>();
  #sendingTotal = 0;
  /** Attempts answered but not yet recorded. */
  #unrecorded = 0;
  /** Every delivery this process holds a lease on. */
  readonly #leased = new Set<number>();
  /** Destinations known to have due work; refreshed from the database every poll. */
  #hot = new Set<number>();
  #lastDiscovery = 0;
  #running = false;
  #looping = false;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #completions: Completion[] = [];
  #flushScheduled = false;
  /** Batches being recorded right now (several at once on PostgreSQL, where each commit waits on the disk). */
  #flushes = 0;
  readonly #idle: (() => void)[] = [];
  /** Leases being given back: stop() waits for them before the store closes. */
  readonly #releasing = new Set<Promise<void>>();

  constructor(private readonly deps: DispatcherDeps) {
    this.#policies = policies(deps.config);
  }

  start(): void {
    this.#running = true;
    this.wake(true);
  }

  /** New work may be due (an enqueue in this process, a finished attempt): look now. */
  wake(discover = false): void {
    if (discover) this.#lastDiscovery = 0;
    if (!this.#running) return;
    if (this.#looping) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#looping = true;
    void this.#loop().finally(() => {
      this.#looping = false;
      if (!this.#running) return;
      if (this.#again) {
        this.#again = false;
        this.wake();
      } else {
        this.#timer = setTimeout(() => this.wake(true), this.deps.config.pollIntervalMs);
        this.#timer.unref();
      }
    });
  }

  async #loop(): Promise<void> {
    const { config, log } = this.deps;
    try {
      const now = Date.now();
      if (now - this.#lastDiscovery >= config.pollIntervalMs) {
        this.#lastDiscovery = now;
        this.#hot = new Set(await dueConnections(this.deps.store, now));
      }
      for (const connectionId of [...this.#hot]) {
        if (!this.#running) return;
        const room = config.maxInFlight - this.#sendingTotal;
        if (room <= 0) return;
        const connection = await this.deps.connections.get(connectionId);
        if (!connection) {
          this.#hot.delete(connectionId);
          continue;
        }
        const held = this.#sending.get(connectionId) ?? 0;
        // Hold up to three rounds of a destination's work: one on the wire, two waiting in the
        // sender for the slots that free up. Claim in batches of at least a round (a claim is a
        // write, whose fixed cost is several deliveries' worth); an idle destination claims at once.
        const want = Math.min(room, config.claimBatch, 3 * connection.maxConcurrency - held, connection.rateBudget(Date.now()));
        if (want <= 0 || (held > 0 && want < connection.maxConcurrency)) continue;
        const claimed = await claimDeliveries(this.deps.store, connectionId, want, this.worker, Date.now(), config.leaseMs);
        if (claimed.length < want) this.#hot.delete(connectionId);
        connection.spend(claimed.length, Date.now());
        for (const delivery of claimed) {
          this.#leased.add(delivery.id);
          this.#launch(connection, delivery);
        }
      }
    } catch (err) {
      log.error({ err }, 'dispatcher round failed; retrying at the next poll');
    }
  }

  #release(ids: number[]): void {
    // Stopping: stop() gives back every lease still held, in one statement.
    if (!this.#running) return;
    for (const id of ids) this.#leased.delete(id);
    const releasing = releaseLeases(this.deps.store, this.worker, ids)
      .catch((err) => this.deps.log.error({ err }, 'giving back leases failed; they expire on their own'))
      .finally(() => this.#releasing.delete(releasing));
    this.#releasing.add(releasing);
  }

  #launch(connection: LiveConnection, delivery: ClaimedDelivery): void {
    this.#sendingTotal++;
    this.#sending.set(connection.id, (this.#sending.get(connection.id) ?? 0) + 1);
    void this.#attempt(connection, delivery).then((completion) => {
      this.#sendingTotal--;
      const n = (this.#sending.get(connection.id) ?? 1) - 1;
      if (n > 0) this.#sending.set(connection.id, n);
      else this.#sending.delete(connection.id);
      if (completion === 'withdrawn') this.#release([delivery.id]);
      else if (completion === 'lost') this.#leased.delete(delivery.id);
      else this.#record(connection, completion);
      if (!this.#running) this.#flush();
    });
  }

  #record(connection: LiveConnection, completion: Completion): void {
    this.#unrecorded++;
    this.#completions.push(completion);
    this.#scheduleFlush();
    const { verdict } = completion;
    if ((verdict.kind === 'retry' && verdict.throttleMs) || (verdict.kind === 'fail' && verdict.disableDestination)) {
      // The receiver asked to be left alone (429/503) or is gone (410): hold the rest back.
      this.#hot.delete(connection.id);
      this.deps.connections.forget(connection.id);
      this.deps.sender.withdraw(connection.id);
    } else if ((this.#sending.get(connection.id) ?? 0) < 2 * connection.maxConcurrency) {
      // Running low: claim the next round.
      this.#hot.add(connection.id);
      this.wake();
    }
  }

  /**
   * Sends one attempt and judges it. The lease (until next_attempt_at) must outlast the request,
   * or another worker could claim the delivery mid-send: one that waited in the sender behind a
   * slow receiver comes back unsent, has its lease renewed (only by the claim that holds it) and
   * goes again; 'lost' when the lease ran out and another worker has it now.
   */
  async #attempt(connection: LiveConnection, delivery: ClaimedDelivery, opts = { queue: true }): Promise<Completion | 'withdrawn' | 'lost'> {
    const policy = isPolicyName(delivery.policy) ? this.#policies[delivery.policy]! : this.#policies.standard!;
    for (;;) {
      const askedAt = Date.now();
      let result: AttemptResult;
      try {
        const request = buildRequest(connection, delivery, this.deps.config.maxTimeoutMs);
        // A connection test goes out at once, not behind the destination's queue.
        if (!opts.queue) delete request.destination;
        const outcome = await this.deps.sender.send(request);
        if ('unsent' in outcome) {
          if (outcome.unsent === 'withdrawn') return 'withdrawn';
          const until = await renewLease(this.deps.store, this.worker, delivery.id, delivery.next_attempt_at, Date.now(), this.deps.config.leaseMs).catch(() => undefined);
          if (until === undefined) return 'lost';
          delivery.next_attempt_at = until;
          continue;
        }
        result = outcome;
      } catch (err) {
        result = { body: '', truncated: false, error: { kind: 'network', message: (err as Error).message }, durationMs: Date.now() - askedAt };
      }
      const verdict = classify(policy, result, Date.now(), this.deps.config.throttleMs);
      const startedAt = result.startedAt ?? askedAt;
      return { delivery, connection, policy, result, verdict, startedAt, nextAttemptAt: this.#nextAttempt(policy, delivery, verdict) };
    }
  }

  /** When to try again, or undefined when this attempt is the last. */
  #nextAttempt(policy: RetryPolicy, delivery: ClaimedDelivery, verdict: Verdict): number | undefined {
    if (verdict.kind !== 'retry') return undefined;
    const delay = scheduledDelay(policy, delivery.round_attempts + 1);
    if (delay === undefined) return undefined;
    const asked = verdict.retryAfterMs === undefined ? 0 : Math.min(verdict.retryAfterMs, this.deps.config.maxRetryAfterMs);
    return Date.now() + Math.max(delay, asked);
  }

  /** Attempts that end in the same turn of the event loop are recorded together. */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Finishes every completed attempt so far in one transaction; at most `recorders` at a time
   *  (those that end meanwhile form the next batch). */
  #flush(): void {
    if (this.#flushes >= this.deps.recorders) return;
    const batch = this.#completions;
    if (batch.length === 0) {
      if (this.#sendingTotal === 0 && this.#unrecorded === 0 && this.#flushes === 0) for (const resolve of this.#idle.splice(0)) resolve();
      return;
    }
    this.#completions = [];
    this.#flushes++;
    void finishAttempts(this.deps, this.worker, batch)
      // An owner may have enqueued the next request (a cohort sync's next page): look for it now.
      .then(({ ownersTold }) => ownersTold && this.wake(true))
      .catch(async () => {
        // One bad row must not undo the others: record them one by one.
        for (const c of batch) {
          await finishAttempts(this.deps, this.worker, [c]).catch((err) => {
            // The lease stays; whoever claims the delivery after it expires sends it again.
            this.deps.log.error({ err, delivery: c.delivery.id }, 'recording a delivery attempt failed');
          });
        }
      })
      .finally(() => {
        this.#unrecorded -= batch.length;
        for (const c of batch) this.#leased.delete(c.delivery.id);
        this.#flushes--;
        this.#flush();
      });
  }

  /**
   * Sends one delivery at once, outside the claim loop, and records it like any other attempt:
   * connection tests use it to report the receiver's answer to the caller.
   */
  async sendNow(deliveryId: number): Promise<Completion | undefined> {
    const delivery = await claimDelivery(this.deps.store, deliveryId, this.worker, Date.now(), this.deps.config.leaseMs);
    if (!delivery) return undefined;
    const connection = await this.deps.connections.get(delivery.connection_id, { fresh: true });
    if (!connection) {
      // Throttled, disabled or deleted meanwhile: the caller hears so now, so nothing goes out later.
      await cancelDelivery(this.deps.store, this.worker, delivery.id, 'the connection could not be sent to when asked');
      return undefined;
    }
    const completion = await this.#attempt(connection, delivery, { queue: false });
    if (typeof completion === 'string') return undefined;
    await finishAttempts(this.deps, this.worker, [completion]);
    return completion;
  }

  /** Stops claiming, lets attempts on the wire finish and be recorded, gives back what is left. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    while (this.#looping) await new Promise((r) => setTimeout(r, 5));
    // Requests still waiting for a slot were never sent: they come back and their leases are given back.
    for (const connectionId of this.#sending.keys()) this.deps.sender.withdraw(connectionId);
    if (this.#sendingTotal > 0 || this.#unrecorded > 0 || this.#flushes > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await Promise.all(this.#releasing);
    await releaseLeases(this.deps.store, this.worker, [...this.#leased]);
  }
}

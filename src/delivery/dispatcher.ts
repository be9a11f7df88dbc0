import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { DeliveryConfig } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/database.js';
import { cancelHeldDelivery, claimDeliveries, claimDelivery, releaseDeliveryLeases, renewDeliveryLease, type ClaimedDelivery, type Lane } from '../store/leases.js';
import { channelWorkDue, dueConnections } from '../store/outbox-repo.js';
import { listenForLanes, type LaneNotices } from '../store/lane-notices.js';
import { channelLane, UnknownChannelError, type Channel, type ChannelRegistry, type LaneKey, type LaneLimits } from './channels.js';
import { scheduledDelay, type AttemptResult, type Verdict } from './classify.js';
import type { ConnectionDirectory, LiveConnection } from './connections.js';
import { finishAttempts, type Completion } from './finish.js';
import type { SendOutcome } from './http-sender.js';
import { UnknownPolicyError, type PolicyRegistry, type RetryPolicy } from './policies.js';
import type { OwnerRegistry } from './owners.js';
import { readJson } from '../store/schema.js';

/** The header a producer sets, with its reason, on a delivery it could not make sendable. */
export const UNSENDABLE = 'x-cohortcast-unsendable';

export interface DispatcherDeps {
  store: Store;
  channels: ChannelRegistry;
  policies: PolicyRegistry;
  connections: ConnectionDirectory;
  owners: OwnerRegistry;
  config: DeliveryConfig;
  metrics: Metrics;
  log: Logger;
  /** Names this process's leases: host, pid and a random part (pids repeat across restarts). */
  worker: string;
  /** Batches of attempts recorded at once: 1 on SQLite (one writer), more on PostgreSQL. */
  recorders: number;
}

export interface DispatcherEvents {
  /** A look for due work in the database ended: the lanes found with work due (connection ids, `channel:NAME`). */
  discovered: [{ lanes: LaneKey[] }];
}

/** A lane ready to be claimed from: where its work goes and its limits. */
type OpenLane = { key: LaneKey; lane: Lane; limits: LaneLimits; connection?: LiveConnection };

/**
 * Claims due deliveries with leases, sends them through their channel, and records each attempt.
 * Work is claimed per lane (a connection, or a channel with a destination of its own such as
 * e-mail), at most three rounds of its concurrency, and sent no faster than its free slots, so one
 * slow or hanging receiver holds only its own slots; the rest keep flowing. Attempts are recorded
 * in batches (one transaction each).
 */
export class Dispatcher {
  readonly worker: string;
  readonly events = new EventEmitter<DispatcherEvents>();
  /** Handed to a channel and not answered yet, per lane: on the wire or waiting there for a slot. */
  readonly #sending = new Map<LaneKey, number>();
  #sendingTotal = 0;
  /** Attempts answered but not yet recorded. */
  #unrecorded = 0;
  /** Every lease this process holds, by delivery. */
  readonly #leased = new Map<number, string>();
  /** Lanes known to have due work; refreshed from the database every poll. */
  #hot = new Set<LaneKey>();
  /**
   * Lanes noticed (another process committed work on them) since the look at them now under way
   * began: a discovery or claim that started before that commit cannot have seen the work, so it
   * must not take the lane off the hot list.
   */
  readonly #noticed = new Set<LaneKey>();
  #warnedUnavailable = 0;
  #lastDiscovery = 0;
  #lastChannelProbe = 0;
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
  /** PostgreSQL: lanes that other processes enqueued work on, as they commit it. */
  #notices: LaneNotices | undefined;

  constructor(private readonly deps: DispatcherDeps) {
    this.worker = deps.worker;
  }

  start(): void {
    this.#running = true;
    const { store, config, log } = this.deps;
    // On SQLite one process owns the data folder: its own enqueues wake it (wake()), nothing else can.
    if (store.dialect === 'postgres') {
      let lostAt = 0;
      this.#notices = listenForLanes(store, config.listenRetryMs, {
        lane: (lane) => this.#notice(lane),
        listening: () => this.wake(true),
        lost: (err) => {
          // Once a minute at most: a database that stays down would fill the log.
          if (Date.now() - lostAt < 60_000) return;
          lostAt = Date.now();
          log.warn({ err }, 'listening for deliveries enqueued elsewhere failed; polling until it is back');
        },
      });
    }
    this.wake(true);
  }

  /** Another process committed work due now on this lane. */
  #notice(lane: string): void {
    const key: LaneKey = /^\d+$/.test(lane) ? Number(lane) : (lane as LaneKey);
    this.#hot.add(key);
    this.#noticed.add(key);
    this.wake();
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
        this.#noticed.clear();
        const hot = new Set<LaneKey>(await dueConnections(this.deps.store, now));
        // Standalone channels (e-mail) are probed once per poll interval, not at every discovery
        // an answer forces: their lanes found hot since are kept meanwhile.
        if (now - this.#lastChannelProbe >= config.pollIntervalMs) {
          this.#lastChannelProbe = now;
          for (const channel of this.deps.channels.standalone()) {
            if (!(await channelWorkDue(this.deps.store, channel.name, now))) continue;
            const unavailable = channel.unavailable();
            if (unavailable === undefined) hot.add(channelLane(channel.name));
            else if (now - this.#warnedUnavailable > 60_000) {
              this.#warnedUnavailable = now;
              log.warn({ channel: channel.name }, unavailable);
            }
          }
        } else {
          for (const key of this.#hot) if (typeof key === 'string') hot.add(key);
        }
        // Noticed while the look above ran (its commit may be later than the look), if it can be sent to now.
        for (const key of this.#noticed) if (await this.#open(key)) hot.add(key);
        this.#hot = hot;
        this.events.emit('discovered', { lanes: [...hot] });
      }
      for (const key of [...this.#hot]) {
        if (!this.#running) return;
        const room = config.maxInFlight - this.#sendingTotal;
        if (room <= 0) return;
        const open = await this.#open(key);
        if (!open) {
          this.#hot.delete(key);
          continue;
        }
        const { limits } = open;
        const held = this.#sending.get(key) ?? 0;
        // Hold up to three rounds of a lane's work: one on the wire, two waiting in the channel
        // for the slots that free up. Claim in batches of at least a round (a claim is a write,
        // whose fixed cost is several deliveries' worth); an idle lane claims at once.
        const want = Math.min(room, config.claimBatch, 3 * limits.maxConcurrency - held, limits.rateBudget(Date.now()));
        if (want <= 0 || (held > 0 && want < limits.maxConcurrency)) continue;
        this.#noticed.delete(key);
        const claimed = await claimDeliveries(this.deps.store, open.lane, want, this.worker, Date.now(), config.leaseMs);
        if (claimed.length < want && !this.#noticed.has(key)) this.#hot.delete(key);
        limits.spend(claimed.length, Date.now());
        for (const delivery of claimed) {
          this.#leased.set(delivery.id, delivery.lease_token);
          this.#launch(open, delivery);
        }
      }
    } catch (err) {
      log.error({ err }, 'dispatcher round failed; retrying at the next poll');
    }
  }

  /** A lane as it can be sent to now; undefined when it cannot (connection disabled, throttled or gone). */
  async #open(key: LaneKey, opts: { fresh?: boolean } = {}): Promise<OpenLane | undefined> {
    if (typeof key === 'number') {
      const connection = await this.deps.connections.get(key, opts);
      return connection && { key, lane: { connectionId: key }, limits: connection, connection };
    }
    const name = key.slice('channel:'.length);
    const channel = this.deps.channels.has(name) ? this.deps.channels.get(name) : undefined;
    if (channel?.bound !== 'standalone' || channel.unavailable() !== undefined) return undefined;
    return { key, lane: { channel: name }, limits: channel.limits };
  }

  #release(deliveries: ClaimedDelivery[]): void {
    // Stopping: stop() gives back every lease still held, in one statement.
    if (!this.#running) return;
    for (const d of deliveries) this.#leased.delete(d.id);
    const releasing = releaseDeliveryLeases(this.deps.store, deliveries.map((d) => ({ id: d.id, token: d.lease_token })), Date.now())
      .catch((err) => this.deps.log.error({ err }, 'giving back leases failed; they expire on their own'))
      .finally(() => this.#releasing.delete(releasing));
    this.#releasing.add(releasing);
  }

  #launch(open: OpenLane, delivery: ClaimedDelivery): void {
    const { key } = open;
    this.#sendingTotal++;
    this.#sending.set(key, (this.#sending.get(key) ?? 0) + 1);
    void this.#attempt(open, delivery).then((completion) => {
      this.#sendingTotal--;
      const n = (this.#sending.get(key) ?? 1) - 1;
      if (n > 0) this.#sending.set(key, n);
      else this.#sending.delete(key);
      if (completion === 'withdrawn') this.#release([delivery]);
      else if (completion === 'lost') this.#leased.delete(delivery.id);
      else this.#record(open, completion);
      if (!this.#running) this.#flush();
    });
  }

  #record(open: OpenLane, completion: Completion): void {
    this.#unrecorded++;
    this.#completions.push(completion);
    this.#scheduleFlush();
    const { verdict } = completion;
    if ((verdict.kind === 'retry' && verdict.throttleMs) || (verdict.kind === 'fail' && verdict.disableDestination)) {
      // The receiver asked to be left alone (429/503) or is gone (410): hold the rest back.
      this.#hot.delete(open.key);
      if (typeof open.key === 'number') this.deps.connections.forget(open.key);
      this.deps.channels.withdraw(open.key);
    } else if ((this.#sending.get(open.key) ?? 0) < 2 * open.limits.maxConcurrency) {
      // Running low: claim the next round.
      this.#hot.add(open.key);
      this.wake();
    }
  }

  /**
   * Sends one attempt through the delivery's channel and judges it. The lease (until
   * next_attempt_at) must outlast the request, or another worker could claim the delivery
   * mid-send: one that waited behind a slow receiver comes back unsent, has its lease renewed
   * (only under the claim that holds it) and goes again; 'lost' when the lease is gone. A channel
   * or policy this process does not know fails the delivery unsent, saying so.
   */
  async #attempt(open: OpenLane, delivery: ClaimedDelivery, opts = { queue: true }): Promise<Completion | 'withdrawn' | 'lost'> {
    let channel: Channel;
    let policy: RetryPolicy;
    try {
      channel = this.deps.channels.get(delivery.channel);
      policy = this.deps.policies.get(delivery.policy);
    } catch (err) {
      if (!(err instanceof UnknownChannelError || err instanceof UnknownPolicyError)) throw err;
      const result: AttemptResult = { body: '', truncated: false, error: { kind: 'refused', message: err.message }, durationMs: 0 };
      const verdict: Verdict = { kind: 'fail', reason: err.message, permanent: true, disableDestination: false };
      const unknown: RetryPolicy = { name: delivery.policy, schedule: [0], jitter: 0, success: '2xx', permanent: [], disableOn: [], retry: false };
      return { delivery, connectionId: delivery.connection_id, policy: unknown, result, verdict, startedAt: Date.now(), nextAttemptAt: undefined };
    }
    // A delivery its producer could not make sendable (a template that failed to render) fails at
    // once, with the producer's reason in the attempt log.
    // (SQLite hands headers back as text: most deliveries are passed over by a substring check.)
    const unsendable = typeof delivery.headers === 'string' && !delivery.headers.includes(UNSENDABLE) ? undefined : readJson<Record<string, string>>(delivery.headers)[UNSENDABLE];
    if (unsendable !== undefined) {
      const result: AttemptResult = { body: '', truncated: false, error: { kind: 'refused', message: unsendable }, durationMs: 0 };
      return { delivery, connectionId: delivery.connection_id, policy, result, verdict: { kind: 'fail', reason: unsendable, permanent: true, disableDestination: false }, startedAt: Date.now(), nextAttemptAt: undefined };
    }
    const send = { queue: opts.queue, maxTimeoutMs: this.deps.config.maxTimeoutMs };
    for (;;) {
      const askedAt = Date.now();
      let result: AttemptResult;
      try {
        let outcome: SendOutcome;
        if (channel.bound === 'connection') {
          if (!open.connection) throw new Error(`a ${channel.name} delivery without a connection`);
          outcome = await channel.send(delivery, open.connection, send);
        } else {
          outcome = await channel.send(delivery, send);
        }
        if ('unsent' in outcome) {
          if (outcome.unsent === 'withdrawn') return 'withdrawn';
          const until = await renewDeliveryLease(this.deps.store, delivery.id, delivery.lease_token, Date.now(), this.deps.config.leaseMs).catch(() => undefined);
          if (until === undefined) return 'lost';
          delivery.next_attempt_at = until;
          continue;
        }
        result = outcome;
      } catch (err) {
        result = { body: '', truncated: false, error: { kind: 'network', message: (err as Error).message }, durationMs: Date.now() - askedAt };
      }
      const verdict = channel.judge(policy, result, Date.now());
      const startedAt = result.startedAt ?? askedAt;
      return { delivery, connectionId: delivery.connection_id, policy, result, verdict, startedAt, nextAttemptAt: this.#nextAttempt(policy, delivery, verdict) };
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
    const open = await this.#open(delivery.connection_id ?? channelLane(delivery.channel), { fresh: true });
    if (!open) {
      // Throttled, disabled or deleted meanwhile: the caller hears so now, so nothing goes out later.
      await cancelHeldDelivery(this.deps.store, delivery.id, delivery.lease_token, 'the destination could not be sent to when asked', Date.now());
      return undefined;
    }
    const completion = await this.#attempt(open, delivery, { queue: false });
    if (typeof completion === 'string') return undefined;
    await finishAttempts(this.deps, this.worker, [completion]);
    return completion;
  }

  /** Stops claiming, lets attempts on the wire finish and be recorded, gives back what is left. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    await this.#notices?.close();
    while (this.#looping) await new Promise((r) => setTimeout(r, 5));
    // Requests still waiting for a slot were never sent: they come back and their leases are given back.
    for (const key of this.#sending.keys()) this.deps.channels.withdraw(key);
    if (this.#sendingTotal > 0 || this.#unrecorded > 0 || this.#flushes > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await Promise.all(this.#releasing);
    await releaseDeliveryLeases(this.deps.store, [...this.#leased].map(([id, token]) => ({ id, token })), Date.now());
  }
}

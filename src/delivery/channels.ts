import type { ClaimedDelivery } from '../store/leases.js';
import type { AttemptResult, Verdict } from './classify.js';
import type { LiveConnection } from './connections.js';
import type { SendOutcome } from './http-sender.js';
import type { RetryPolicy } from './policies.js';

/**
 * A delivery names its channel: how it is sent and how an attempt's result is judged. The outbox,
 * leases, retries, attempt log, metrics and API are the same for every channel; a channel is only
 * the last step. Webhooks over HTTP and e-mail over SMTP today; Slack and SMS plug in the same way.
 */

/** How many requests a lane may have out at once and how fast: a connection's, or a standalone channel's own. */
export interface LaneLimits {
  maxConcurrency: number;
  /** How many more requests the rate limit allows now. */
  rateBudget(now: number): number;
  spend(n: number, now: number): void;
}

export interface SendOptions {
  /** false: straight out, not behind the destination's queue (a connection test, reported to the caller). */
  queue: boolean;
  /** The most any attempt may take in this process (within its lease). */
  maxTimeoutMs: number;
}

interface ChannelBase {
  readonly name: string;
  /** Reads one attempt's result by the delivery's policy. */
  judge(policy: RetryPolicy, result: AttemptResult, now: number): Verdict;
  /** Hands back, unsent, the lane's requests still waiting for a slot: the dispatcher holds that lane back. */
  withdraw?(lane: LaneKey): void;
  close?(): Promise<void>;
}

/** A channel whose deliveries go to a connection: its URL, credentials and limits (webhook, and Slack and SMS next). */
export interface ConnectionChannel extends ChannelBase {
  readonly bound: 'connection';
  send(delivery: ClaimedDelivery, connection: LiveConnection, opts: SendOptions): Promise<SendOutcome>;
}

/** A channel with one destination of its own, set by the operator (e-mail: the SMTP server). */
export interface StandaloneChannel extends ChannelBase {
  readonly bound: 'standalone';
  readonly limits: LaneLimits;
  /** Why it cannot send now (not configured), or undefined. Its deliveries wait meanwhile. */
  unavailable(): string | undefined;
  send(delivery: ClaimedDelivery, opts: SendOptions): Promise<SendOutcome>;
}

export type Channel = ConnectionChannel | StandaloneChannel;

/** A lane of work: a connection's id, or `channel:NAME` for a standalone channel's. */
export type LaneKey = number | `channel:${string}`;
export const channelLane = (name: string): LaneKey => `channel:${name}`;

export class UnknownChannelError extends Error {}

/** Channels by name. */
export class ChannelRegistry {
  readonly #channels = new Map<string, Channel>();

  register(channel: Channel): void {
    if (this.#channels.has(channel.name)) throw new Error(`a channel named "${channel.name}" is already registered`);
    this.#channels.set(channel.name, channel);
  }

  has(name: string): boolean {
    return this.#channels.has(name);
  }

  get(name: string): Channel {
    const channel = this.#channels.get(name);
    if (!channel) throw new UnknownChannelError(`unknown channel "${name}"; registered: ${[...this.#channels.keys()].join(', ')}`);
    return channel;
  }

  standalone(): StandaloneChannel[] {
    return [...this.#channels.values()].filter((c): c is StandaloneChannel => c.bound === 'standalone');
  }

  /** Every channel that may hold requests for the lane hands them back. */
  withdraw(lane: LaneKey): void {
    for (const c of this.#channels.values()) c.withdraw?.(lane);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#channels.values()].map((c) => c.close?.()));
  }
}

import type { Kysely, Transaction } from 'kysely';
import { insertDeliveries } from '../store/outbox-repo.js';
import type { Database } from '../store/schema.js';
import type { ChannelRegistry } from './channels.js';
import type { PolicyRegistry } from './policies.js';
import { newWebhookId } from './signing.js';

/** One request (or e-mail) a surface wants made. */
export interface NewDelivery {
  projectId: number;
  /** How it is sent (channels.ts); default 'webhook'. */
  channel?: string;
  /** The connection it goes to; null (or left out) for a channel with a destination of its own (e-mail). */
  connectionId?: number | null;
  /** Who hears how it ends (owners.ts), e.g. "cohort-sync" and its page. */
  ownerKind: string;
  ownerId: string | number;
  /** The event it tells of (subscriptions), for finding its deliveries by event_id. */
  eventId?: string;
  /** A registered retry policy (policies.ts). */
  policy: string;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
  /** Not before this time (ms); default now. */
  notBefore?: number;
}

/**
 * The transactional outbox: call enqueue with the producer's own transaction, so its state change
 * and the deliveries it causes commit together or not at all. Each delivery gets its webhook-id
 * here, once, and keeps it on every retry. A channel or policy this process does not know is
 * refused here, before anything is stored.
 */
export class Outbox {
  constructor(private readonly registries: { channels: ChannelRegistry; policies: PolicyRegistry }) {}

  async enqueue(db: Kysely<Database> | Transaction<Database>, items: NewDelivery[], now = Date.now()) {
    const { channels, policies } = this.registries;
    for (const d of items) {
      const channel = channels.get(d.channel ?? 'webhook');
      policies.get(d.policy);
      const hasConnection = d.connectionId !== undefined && d.connectionId !== null;
      if (channel.bound === 'connection' && !hasConnection) throw new Error(`${channel.name} deliveries need a connection`);
      if (channel.bound === 'standalone' && hasConnection) throw new Error(`${channel.name} deliveries go to the channel's own destination, not to a connection`);
    }
    return insertDeliveries(
      db,
      items.map((d) => ({
        projectId: d.projectId,
        channel: d.channel ?? 'webhook',
        connectionId: d.connectionId ?? null,
        webhookId: newWebhookId(),
        ownerKind: d.ownerKind,
        ownerId: String(d.ownerId),
        eventId: d.eventId ?? null,
        policy: d.policy,
        contentType: d.contentType,
        body: d.body,
        headers: d.headers ?? {},
        notBefore: d.notBefore ?? now,
      })),
      now,
    );
  }
}

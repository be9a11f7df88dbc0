import crypto from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../store/schema.js';
import { insertWebhookEvents, type NewWebhookEvent } from '../store/webhook-events-repo.js';
import type { SubscriptionIndex } from './index.js';

/** evt_ + time + randomness: unique, and sorting by creation. */
export const newEventId = (now = Date.now()): string => `evt_${now.toString(16).padStart(12, '0')}${crypto.randomBytes(8).toString('hex')}`;

/**
 * Produces events: in the producer's own transaction, an event some enabled subscription of the
 * project wants is written (with its event_id, fixed here once) to webhook_events; the fan-out
 * turns it into deliveries after. An event nobody subscribed to is not written at all: producing
 * it costs a look-up in a cached index.
 */
export class Emitter {
  constructor(
    private readonly index: SubscriptionIndex,
    /** Called after an emit, so the fan-out of this process looks at once. */
    private readonly written: () => void,
  ) {}

  /** Whether the project has an enabled subscription to `type` (from the cache: never waits). */
  wants(projectId: number, type: string): boolean {
    return this.index.peek(projectId).types.has(type);
  }

  async emit(db: Kysely<Database> | Transaction<Database>, projectId: number, type: string, data: Record<string, unknown>[], now = Date.now()): Promise<void> {
    if (data.length === 0 || !this.wants(projectId, type)) return;
    const events: NewWebhookEvent[] = data.map((d) => ({ eventId: newEventId(now), projectId, type, data: JSON.stringify(d), createdAt: now }));
    await insertWebhookEvents(db, events);
    this.written();
  }
}

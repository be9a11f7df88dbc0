import type { Outbox, NewDelivery } from '../delivery/outbox.js';
import type { Store } from '../store/database.js';
import { iso } from '../iso-time.js';
import { markFannedOut, pendingWebhookEvents, pendingProjects } from '../store/webhook-events-repo.js';
import type { Envelope } from './channel-specs.js';
import type { ProjectIndex, SubscriptionIndex } from './index.js';

export const SUBSCRIPTION_OWNER = 'subscription';

/** The owner id of a subscription's delivery: which subscription and channel, and which event (its type and id). */
export const subscriptionOwnerId = (subscriptionId: number, channel: number, type: string, eventId: string) => `${subscriptionId}/${channel}/${type}/${eventId}`;

/** The deliveries one event makes: one per channel of each subscription that wants it (an SMS channel: one per number). */
export function deliveriesFor(index: ProjectIndex, envelope: Envelope, now: number): NewDelivery[] {
  const out: NewDelivery[] = [];
  for (const sub of index.subscriptions) {
    if (!sub.wants(envelope.event_type, envelope.data, now)) continue;
    sub.channels.forEach((channel, i) => out.push(...channel.deliveries(envelope, { kind: SUBSCRIPTION_OWNER, id: subscriptionOwnerId(sub.row.id, i, envelope.event_type, envelope.event_id) })));
  }
  return out;
}

/**
 * Turns written events into deliveries: a batch of events not yet fanned out is read and locked
 * (SKIP LOCKED on PostgreSQL: each event is fanned out by one process), each matched against the
 * project's enabled subscriptions now, every channel rendered, and the deliveries enqueued in the
 * transaction that marks the events done, so a crash makes them all or none.
 */
export class FanOut {
  constructor(private readonly deps: { store: Store; index: SubscriptionIndex; outbox: Outbox; batch: number; sent: () => void }) {}

  /** One pass; answers whether more may be waiting. */
  async pass(): Promise<boolean> {
    const { store, index, outbox, batch } = this.deps;
    const projects = await pendingProjects(store.db, batch);
    if (projects.length === 0) return false;
    // Matched against the subscriptions as stored now, not this process's cache: an event another
    // process wrote for a subscription made there a moment ago must not find it missing here.
    // Loaded before the transaction (on SQLite it holds the one connection).
    const indexes = new Map<number, ProjectIndex>();
    for (const p of projects) indexes.set(p, await index.reload(p));
    let made = 0;
    let seen = 0;
    await store.db.transaction().execute(async (trx) => {
      const events = await pendingWebhookEvents(trx, store.dialect, batch);
      seen = events.length;
      const done: number[] = [];
      const deliveries: NewDelivery[] = [];
      const now = Date.now();
      for (const e of events) {
        const idx = indexes.get(e.project_id);
        if (!idx) continue; // a project that appeared meanwhile: the next pass
        const envelope: Envelope = { event_id: e.event_id, event_type: e.type, created_at: iso(e.created_at)!, project_id: e.project_id, data: JSON.parse(e.data) as Record<string, unknown> };
        deliveries.push(...deliveriesFor(idx, envelope, now));
        done.push(e.id);
      }
      await outbox.enqueue(trx, deliveries, now);
      await markFannedOut(trx, done);
      made = deliveries.length;
    });
    if (made > 0) this.deps.sent();
    return seen === batch;
  }
}

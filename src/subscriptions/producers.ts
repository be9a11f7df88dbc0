import type { Transaction } from 'kysely';
import type { DeliveryObserver } from '../delivery/owners.js';
import type { IngestTap } from '../store/ingest-writer.js';
import { markDirty } from '../store/membership-repo.js';
import type { ProfileChangeRecord } from '../store/profile-writer.js';
import type { Database } from '../store/schema.js';
import { newEventId, type Emitter } from './emitter.js';
import { SUBSCRIPTION_OWNER } from './fanout.js';
import type { SubscriptionIndex } from './index.js';

/**
 * Where events come from, each in the transaction of what it tells: ingestion (the ingest writer's
 * tap: users marked for live membership, event.ingested), profile changes (profile.*, and marks),
 * and delivery endings (connection.disabled, delivery.exhausted). Cohort syncs emit theirs through
 * the Emitter they are given.
 */

/** The ingest writer's tap: nothing for a project without subscriptions that care (from the cache). */
export function ingestTap(index: SubscriptionIndex, written: () => void): IngestTap {
  return {
    forProject(projectId) {
      const idx = index.peek(projectId);
      const forwarding = idx.types.has('event.ingested');
      if (idx.watchedEvents.size === 0 && !forwarding && idx.watched.size === 0) return undefined;
      return {
        watching: idx.watched.size > 0,
        marks: (event) => idx.watchedEvents.has(event),
        forward(e) {
          if (!forwarding || (idx.forwarded && !idx.forwarded.has(e.event))) return undefined;
          const data = `{"event":${JSON.stringify(e.event)},"distinct_id":${JSON.stringify(e.distinctId)},"time":${JSON.stringify(new Date(e.time).toISOString())},"properties":${e.properties}}`;
          return { eventId: newEventId(), data };
        },
      };
    },
    written,
  };
}

/** Told by the profile writer: marks changed users of a project that watches cohorts, and emits profile.* events. */
export function profileProducer(index: SubscriptionIndex, emitter: Emitter, marked: () => void) {
  return async (trx: Transaction<Database>, projectId: number, changes: ProfileChangeRecord[], now: number): Promise<void> => {
    const idx = index.peek(projectId);
    if (idx.watched.size > 0) {
      await markDirty(trx, projectId, changes.map((c) => c.distinctId), now);
      marked();
    }
    const created = changes.filter((c) => c.before === null && c.after !== null);
    const deleted = changes.filter((c) => c.before !== null && c.after === null);
    const updated = changes.filter((c) => c.before !== null && c.after !== null);
    await emitter.emit(trx, projectId, 'profile.created', created.map((c) => ({ distinct_id: c.distinctId, properties: c.after })), now);
    await emitter.emit(trx, projectId, 'profile.deleted', deleted.map((c) => ({ distinct_id: c.distinctId })), now);
    if (updated.length > 0 && emitter.wants(projectId, 'profile.updated')) {
      const data = updated.flatMap((c) => {
        const before = c.before!;
        const after = c.after!;
        const changed = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
        return changed.length === 0 ? [] : [{ distinct_id: c.distinctId, properties: after, changed }];
      });
      await emitter.emit(trx, projectId, 'profile.updated', data, now);
    }
  };
}

/** connection.disabled and delivery.exhausted, from the transaction that records them. */
export function deliveryProducer(emitter: Emitter): DeliveryObserver {
  return {
    async failed(trx, ending) {
      if (ending.outcome !== 'exhausted') return;
      const d = ending.delivery;
      // A delivery telling of an exhausted delivery never tells of its own exhaustion: no chain.
      if (d.owner_kind === SUBSCRIPTION_OWNER && d.owner_id.includes('/delivery.exhausted/')) return;
      await emitter.emit(trx, d.project_id, 'delivery.exhausted', [
        { delivery_id: d.id, connection_id: d.connection_id, channel: d.channel, owner: { kind: d.owner_kind, id: d.owner_id }, attempts: d.attempts + 1, last_error: ending.reason },
      ]);
    },
    async connectionDisabled(trx, projectId, connectionId, reason) {
      await emitter.emit(trx, projectId, 'connection.disabled', [{ connection_id: connectionId, reason }]);
    },
  };
}

import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Store } from './database.js';
import type { Database, DeliveriesTable } from './schema.js';

export type DeliveryRow = Selectable<DeliveriesTable>;
type Db = Kysely<Database> | Transaction<Database>;

export interface NewDeliveryRow {
  projectId: number;
  connectionId: number;
  webhookId: string;
  ownerKind: string;
  ownerId: string;
  policy: string;
  contentType: string;
  body: string;
  headers: Record<string, string>;
  notBefore: number;
}

/** Inserts deliveries; pass the producer's transaction so they commit with its state change. */
export async function insertDeliveries(db: Db, rows: NewDeliveryRow[], now: number): Promise<{ id: number; webhook_id: string }[]> {
  if (rows.length === 0) return [];
  return db
    .insertInto('deliveries')
    .values(
      rows.map((r) => ({
        project_id: r.projectId,
        connection_id: r.connectionId,
        webhook_id: r.webhookId,
        owner_kind: r.ownerKind,
        owner_id: r.ownerId,
        policy: r.policy,
        content_type: r.contentType,
        body: r.body,
        headers: JSON.stringify(r.headers),
        state: 'pending' as const,
        attempts: 0,
        round_attempts: 0,
        next_attempt_at: r.notBefore,
        created_at: now,
        updated_at: now,
      })),
    )
    .returning(['id', 'webhook_id'])
    .execute();
}

/** Destinations that have work due now and may be sent to (enabled, not throttled). */
export async function dueConnections(store: Store, now: number): Promise<number[]> {
  const rows = await store.db
    .selectFrom('deliveries as d')
    .innerJoin('connections as c', 'c.id', 'd.connection_id')
    .select('d.connection_id')
    .distinct()
    .where('d.state', '=', 'pending')
    .where('d.next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('d.lease_expires_at', 'is', null), eb('d.lease_expires_at', '<=', now)]))
    .where('c.disabled_at', 'is', null)
    .where('c.deleted_at', 'is', null)
    .where((eb) => eb.or([eb('c.throttled_until', 'is', null), eb('c.throttled_until', '<=', now)]))
    .execute();
  return rows.map((r) => r.connection_id);
}

/**
 * Leases up to `limit` due deliveries of one destination to `worker`. On PostgreSQL rows another
 * worker is claiming are skipped, not waited for; on SQLite the single writer makes the update atomic.
 */
export async function claimDeliveries(store: Store, connectionId: number, limit: number, worker: string, now: number, leaseMs: number): Promise<DeliveryRow[]> {
  const due = store.db
    .selectFrom('deliveries')
    .select('id')
    .where('connection_id', '=', connectionId)
    .where('state', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<=', now)]))
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(limit)
    .$if(store.dialect === 'postgres', (q) => q.forUpdate().skipLocked());
  return store.db
    .updateTable('deliveries')
    .set({ lease_owner: worker, lease_expires_at: now + leaseMs, updated_at: now })
    .where('id', 'in', due)
    .returningAll()
    .execute();
}

/** Gives back leases this worker still holds (on shutdown), so others need not wait for them to expire. */
export async function releaseLeases(store: Store, worker: string, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await store.db
    .updateTable('deliveries')
    .set({ lease_owner: null, lease_expires_at: null })
    .where('id', 'in', ids)
    .where('lease_owner', '=', worker)
    .where('state', '=', 'pending')
    .execute();
}

export interface QueueStats {
  pending: number;
  oldestDueAt: number | null;
}

export async function queueStats(store: Store, now: number): Promise<QueueStats> {
  const row = await store.db
    .selectFrom('deliveries')
    .select((eb) => [eb.fn.countAll<number>().as('pending'), eb.fn.min('next_attempt_at').as('oldest')])
    .where('state', '=', 'pending')
    .executeTakeFirst();
  const oldest = row?.oldest == null ? null : Number(row.oldest);
  return { pending: Number(row?.pending ?? 0), oldestDueAt: oldest !== null && oldest <= now ? oldest : null };
}

/** Leases one delivery by id, if nobody holds it: for sending it now (connection tests). */
export async function claimDelivery(store: Store, id: number, worker: string, now: number, leaseMs: number): Promise<DeliveryRow | undefined> {
  return store.db
    .updateTable('deliveries')
    .set({ lease_owner: worker, lease_expires_at: now + leaseMs, updated_at: now })
    .where('id', '=', id)
    .where('state', '=', 'pending')
    .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<=', now)]))
    .returningAll()
    .executeTakeFirst();
}

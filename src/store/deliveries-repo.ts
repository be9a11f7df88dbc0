import { sql, type Selectable } from 'kysely';
import type { Store } from './database.js';
import type { DeliveryRow } from './leases.js';
import { deliveryBody, requeueDeliveries } from './outbox-repo.js';
import type { DeliveryAttemptsTable, DeliveryState } from './schema.js';

export type { DeliveryRow };

export interface DeliveryQuery {
  connectionId?: number;
  channel?: string;
  state?: DeliveryState;
  ownerKind?: string;
  /** One owner; ending in "/" or ":", every owner id under it (a subscription's "12/", an alert's "4/", a sync run's "7:"). */
  ownerId?: string;
  eventId?: string;
  /** Continue with ids below this one. */
  before?: number;
  limit: number;
}

export async function listDeliveries(store: Store, projectId: number, q: DeliveryQuery): Promise<DeliveryRow[]> {
  let query = store.db.selectFrom('deliveries').selectAll().where('project_id', '=', projectId);
  if (q.connectionId !== undefined) query = query.where('connection_id', '=', q.connectionId);
  if (q.channel !== undefined) query = query.where('channel', '=', q.channel);
  if (q.state !== undefined) query = query.where('state', '=', q.state);
  if (q.ownerKind !== undefined) query = query.where('owner_kind', '=', q.ownerKind);
  if (q.ownerId !== undefined && /[/:]$/.test(q.ownerId)) query = query.where(sql<string>`substr(owner_id, 1, ${sql.lit([...q.ownerId].length)})`, '=', q.ownerId);
  else if (q.ownerId !== undefined) query = query.where('owner_id', '=', q.ownerId);
  if (q.eventId !== undefined) query = query.where('event_id', '=', q.eventId);
  if (q.before !== undefined) query = query.where('id', '<', q.before);
  return query.orderBy('id', 'desc').limit(q.limit).execute();
}

export async function findDelivery(store: Store, projectId: number, id: number): Promise<DeliveryRow | undefined> {
  const row = await store.db.selectFrom('deliveries').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
  return row && { ...row, body: await deliveryBody(store.db, row) };
}

export async function listAttempts(store: Store, deliveryId: number): Promise<Selectable<DeliveryAttemptsTable>[]> {
  return store.db.selectFrom('delivery_attempts').selectAll().where('delivery_id', '=', deliveryId).orderBy('attempt').execute();
}

/** Back to the queue, due now; refused while a worker holds a live lease on it, and once retention removed its body. */
export async function retryDelivery(store: Store, projectId: number, id: number, now: number): Promise<DeliveryRow | 'not_found' | 'in_flight' | 'body_pruned'> {
  const [requeued] = await requeueDeliveries(store.db, { project: projectId, id }, now);
  const row = await findDelivery(store, projectId, id);
  if (!row) return 'not_found';
  if (requeued !== undefined) return row;
  return row.body_pruned_at !== null ? 'body_pruned' : 'in_flight';
}

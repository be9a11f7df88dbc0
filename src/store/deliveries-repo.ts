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
  /** Made at or after this instant (ms) … */
  since?: number;
  /** … and before this one. */
  until?: number;
  /** Continue with ids below this one. */
  before?: number;
  limit: number;
}

/**
 * The ids of the deliveries made in [since, until): one seek at each end of deliveries_by_created.
 * Ids follow creation (as retention's scan relies on too), so the list reads an id range of its own
 * indexes instead of sorting a time range; undefined when the window holds none.
 */
async function idRange(store: Store, since: number | undefined, until: number | undefined): Promise<{ from?: number; to?: number } | undefined> {
  const range: { from?: number; to?: number } = {};
  if (since !== undefined) {
    const first = await store.db.selectFrom('deliveries').select('id').where('created_at', '>=', since).orderBy('created_at').orderBy('id').limit(1).executeTakeFirst();
    if (!first) return undefined;
    range.from = first.id;
  }
  if (until !== undefined) {
    const last = await store.db.selectFrom('deliveries').select('id').where('created_at', '<', until).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst();
    if (!last) return undefined;
    range.to = last.id;
  }
  return range;
}

export async function listDeliveries(store: Store, projectId: number, q: DeliveryQuery): Promise<DeliveryRow[]> {
  const ids = await idRange(store, q.since, q.until);
  if (!ids) return [];
  let query = store.db.selectFrom('deliveries').selectAll().where('project_id', '=', projectId);
  if (q.connectionId !== undefined) query = query.where('connection_id', '=', q.connectionId);
  if (q.channel !== undefined) query = query.where('channel', '=', q.channel);
  if (q.state !== undefined) query = query.where('state', '=', q.state);
  if (q.ownerKind !== undefined) query = query.where('owner_kind', '=', q.ownerKind);
  if (q.ownerId !== undefined && /[/:]$/.test(q.ownerId)) {
    query = query.where(sql<string>`substr(owner_id, 1, ${sql.lit([...q.ownerId].length)})`, '=', q.ownerId);
    // SQLite orders text by its bytes, so the prefix is also a range its owner index can seek to
    // (without it the planner read the project's deliveries newest first). PostgreSQL's collation
    // may not order by bytes: it keeps the exact test alone, and its planner has the owner's statistics.
    if (store.dialect === 'sqlite') query = query.where('owner_id', '>=', q.ownerId).where('owner_id', '<', `${q.ownerId.slice(0, -1)}${String.fromCharCode(q.ownerId.charCodeAt(q.ownerId.length - 1) + 1)}`);
  } else if (q.ownerId !== undefined) query = query.where('owner_id', '=', q.ownerId);
  if (q.eventId !== undefined) query = query.where('event_id', '=', q.eventId);
  if (q.before !== undefined) query = query.where('id', '<', q.before);
  if (ids.from !== undefined) query = query.where('id', '>=', ids.from);
  if (ids.to !== undefined) query = query.where('id', '<=', ids.to);
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

/** An attempt as a connection's health reads it (no reply body or headers). */
export interface HealthAttempt {
  delivery_id: number;
  attempt: number;
  started_at: number;
  duration_ms: number;
  status: number | null;
  outcome: string;
  reason: string | null;
  error: string | null;
}

/**
 * The attempts started since `since` among a connection's latest `sample` deliveries, and how old
 * the oldest of those deliveries is. A sample, not the whole window: the attempt log has no
 * connection or time index (each would slow every recorded attempt), and a busy destination makes
 * millions of attempts a day; this reads at most `sample` entries of deliveries_by_connection and
 * then the attempts of each through delivery_attempts_by_delivery, however big the tables grow.
 */
export async function recentAttempts(store: Store, connectionId: number, since: number, sample: number): Promise<{ attempts: HealthAttempt[]; deliveries: number; oldestMadeAt: number | null }> {
  const latest = await store.db.selectFrom('deliveries').select(['id', 'created_at']).where('connection_id', '=', connectionId).orderBy('id', 'desc').limit(sample).execute();
  if (latest.length === 0) return { attempts: [], deliveries: 0, oldestMadeAt: null };
  const attempts = await store.db
    .selectFrom('delivery_attempts')
    .select(['delivery_id', 'attempt', 'started_at', 'duration_ms', 'status', 'outcome', 'reason', 'error'])
    .where('delivery_id', 'in', latest.map((d) => d.id))
    .where('started_at', '>=', since)
    .execute();
  return { attempts, deliveries: latest.length, oldestMadeAt: latest.at(-1)!.created_at };
}

import type { Insertable, Selectable, Transaction, Updateable } from 'kysely';
import type { Store } from './database.js';
import { cancelDeliveries, requeueDeliveries } from './outbox-repo.js';
import type { ConnectionsTable, Database } from './schema.js';

export type ConnectionRow = Selectable<ConnectionsTable>;

export async function insertConnection(store: Store, row: Insertable<ConnectionsTable>): Promise<ConnectionRow> {
  return store.db.insertInto('connections').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findConnection(store: Store, projectId: number, id: number): Promise<ConnectionRow | undefined> {
  return store.db
    .selectFrom('connections')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
}

export async function listConnections(store: Store, projectId: number, afterId: number, limit: number): Promise<ConnectionRow[]> {
  return store.db
    .selectFrom('connections')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('deleted_at', 'is', null)
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .execute();
}

export async function updateConnection(store: Store, projectId: number, id: number, change: Updateable<ConnectionsTable>): Promise<ConnectionRow | undefined> {
  return store.db
    .updateTable('connections')
    .set(change)
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
}

/** Deletes a destination (kept for the delivery log) and cancels what was still waiting for it. */
export async function deleteConnection(store: Store, projectId: number, id: number, now: number): Promise<boolean> {
  return store.db.transaction().execute(async (trx) => {
    const res = await trx
      .updateTable('connections')
      .set({ deleted_at: now, updated_at: now })
      .where('project_id', '=', projectId)
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) return false;
    // Even those in flight: their attempts are logged, but nothing more is sent for a connection that is gone.
    await cancelDeliveries(trx, { connectionId: id, state: 'pending' }, 'the connection was deleted', now, { evenLeased: true });
    return true;
  });
}

/** Puts failed deliveries of a destination that ended in [from, to) back in the queue, due now. */
export async function requeueFailed(store: Store, connectionId: number, from: number, to: number, now: number): Promise<number> {
  return (await requeueDeliveries(store.db, { connectionId, state: 'failed', completedFrom: from, completedTo: to }, now)).length;
}

/** A connection as the dispatcher loads it, whatever its project. */
export async function connectionById(store: Store, id: number): Promise<ConnectionRow | undefined> {
  return store.db.selectFrom('connections').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Switches a destination off (410 Gone), inside the transaction that records why. */
export async function disableConnection(trx: Transaction<Database>, id: number, reason: string, now: number): Promise<void> {
  await trx.updateTable('connections').set({ disabled_at: now, disabled_reason: reason, updated_at: now }).where('id', '=', id).where('disabled_at', 'is', null).execute();
}

/** Holds every request to a destination back until `until` (429/503), never shortening a hold already set. */
export async function throttleConnection(trx: Transaction<Database>, id: number, until: number): Promise<void> {
  await trx
    .updateTable('connections')
    .set({ throttled_until: until })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('throttled_until', 'is', null), eb('throttled_until', '<', until)]))
    .execute();
}

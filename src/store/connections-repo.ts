import type { Insertable, Selectable, Updateable } from 'kysely';
import type { Store } from './database.js';
import { PENDING, requeue } from './outbox-repo.js';
import type { ConnectionsTable } from './schema.js';

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
    await trx
      .updateTable('deliveries')
      .set({ state: 'cancelled', outcome: 'cancelled', last_error: 'the connection was deleted', completed_at: now, updated_at: now })
      .where('connection_id', '=', id)
      .where('state', '=', PENDING)
      .execute();
    return true;
  });
}

/** Puts failed deliveries of a destination that ended in [from, to) back in the queue, due now. */
export async function requeueFailed(store: Store, connectionId: number, from: number, to: number, now: number): Promise<number> {
  const res = await store.db
    .updateTable('deliveries')
    .set(requeue(now))
    .where('connection_id', '=', connectionId)
    .where('state', '=', 'failed')
    .where('completed_at', '>=', from)
    .where('completed_at', '<', to)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Store } from './database.js';
import type { Database, NotificationsTable } from './schema.js';

export type NotificationRow = Selectable<NotificationsTable>;

/** Queues an e-mail; pass the transaction of what it tells, so both commit together. */
export async function insertNotification(db: Kysely<Database> | Transaction<Database>, n: { projectId: number; recipients: string[]; subject: string; body: string }, now: number): Promise<void> {
  await db
    .insertInto('notifications')
    .values({ project_id: n.projectId, recipients: JSON.stringify(n.recipients), subject: n.subject, body: n.body, state: 'pending', attempts: 0, next_attempt_at: now, created_at: now })
    .execute();
}

/**
 * Leases due e-mails to this process until `now + leaseMs` (their next_attempt_at moves there, so
 * another process takes them only if this one dies before it records the outcome).
 */
export async function claimNotifications(store: Store, now: number, leaseMs: number, limit: number): Promise<NotificationRow[]> {
  const due = store.db
    .selectFrom('notifications')
    .select('id')
    .where('state', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .orderBy('next_attempt_at')
    .limit(limit)
    .$if(store.dialect === 'postgres', (q) => q.forUpdate().skipLocked());
  return store.db.updateTable('notifications').set({ next_attempt_at: now + leaseMs }).where('id', 'in', due).returningAll().execute();
}

export async function notificationSent(store: Store, id: number, now: number): Promise<void> {
  await store.db.updateTable('notifications').set((eb) => ({ state: 'sent', sent_at: now, attempts: eb('attempts', '+', 1), last_error: null })).where('id', '=', id).execute();
}

/**
 * Records a failed attempt: tried again at `retryAt`, or given up when it is undefined; `recipients`
 * narrows it to those still to be reached (the server took the others).
 */
export async function notificationFailed(store: Store, id: number, error: string, retryAt: number | undefined, recipients?: string[]): Promise<void> {
  await store.db
    .updateTable('notifications')
    .set((eb) => ({
      attempts: eb('attempts', '+', 1),
      last_error: error,
      ...(recipients ? { recipients: JSON.stringify(recipients) } : {}),
      ...(retryAt === undefined ? { state: 'failed' as const } : { next_attempt_at: retryAt }),
    }))
    .where('id', '=', id)
    .execute();
}

import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Database, SubscriptionsTable } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;
export type SubscriptionRow = Selectable<SubscriptionsTable>;
export interface SubscriptionFields {
  name: string;
  event_types: string[];
  cohort_ids: number[];
  event_filter: unknown;
  channels: unknown[];
  enabled: boolean;
}

const row = (f: Partial<SubscriptionFields>) => ({
  ...(f.name !== undefined ? { name: f.name } : {}),
  ...(f.event_types !== undefined ? { event_types: JSON.stringify(f.event_types) } : {}),
  ...(f.cohort_ids !== undefined ? { cohort_ids: JSON.stringify(f.cohort_ids) } : {}),
  ...(f.event_filter !== undefined ? { event_filter: f.event_filter === null ? null : JSON.stringify(f.event_filter) } : {}),
  ...(f.channels !== undefined ? { channels: JSON.stringify(f.channels) } : {}),
  ...(f.enabled !== undefined ? { enabled: f.enabled ? 1 : 0 } : {}),
});

export async function insertSubscription(db: Db, projectId: number, f: SubscriptionFields, now: number): Promise<SubscriptionRow> {
  return db
    .insertInto('subscriptions')
    .values({ project_id: projectId, ...row(f), name: f.name, event_types: JSON.stringify(f.event_types), cohort_ids: JSON.stringify(f.cohort_ids), channels: JSON.stringify(f.channels), enabled: f.enabled ? 1 : 0, created_at: now, updated_at: now })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function updateSubscription(db: Db, projectId: number, id: number, f: Partial<SubscriptionFields>, now: number): Promise<SubscriptionRow | undefined> {
  return db.updateTable('subscriptions').set({ ...row(f), updated_at: now }).where('project_id', '=', projectId).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function findSubscription(db: Db, projectId: number, id: number): Promise<SubscriptionRow | undefined> {
  return db.selectFrom('subscriptions').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
}

export async function listSubscriptions(db: Db, projectId: number, after: number | undefined, limit: number): Promise<SubscriptionRow[]> {
  let q = db.selectFrom('subscriptions').selectAll().where('project_id', '=', projectId);
  if (after !== undefined) q = q.where('id', '>', after);
  return q.orderBy('id').limit(limit).execute();
}

export async function deleteSubscription(db: Db, projectId: number, id: number): Promise<boolean> {
  const res = await db.deleteFrom('subscriptions').where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

/** A project's enabled subscriptions: what producers and the fan-out consult (cached by subscriptions/index.ts). */
export async function enabledSubscriptions(db: Db, projectId: number): Promise<SubscriptionRow[]> {
  return db.selectFrom('subscriptions').selectAll().where('project_id', '=', projectId).where('enabled', '=', 1).orderBy('id').execute();
}

/** Every project with an enabled subscription. */
export async function projectsWithSubscriptions(db: Db): Promise<number[]> {
  const rows = await db.selectFrom('subscriptions').select('project_id').distinct().where('enabled', '=', 1).execute();
  return rows.map((r) => r.project_id);
}

/** Subscriptions that use a connection (it cannot be deleted under them). */
export async function subscriptionsUsingConnection(db: Db, projectId: number, connectionId: number): Promise<number[]> {
  const rows = await db.selectFrom('subscriptions').select(['id', 'channels']).where('project_id', '=', projectId).execute();
  return rows
    .filter((r) => (typeof r.channels === 'string' ? (JSON.parse(r.channels) as { connection_id?: number }[]) : (r.channels as { connection_id?: number }[])).some((c) => c.connection_id === connectionId))
    .map((r) => r.id);
}

/** Subscriptions that watch a cohort (it cannot be deleted under them). */
export async function subscriptionsNamingCohort(db: Db, projectId: number, cohortId: number): Promise<number[]> {
  const rows = await db.selectFrom('subscriptions').select(['id', 'cohort_ids']).where('project_id', '=', projectId).execute();
  return rows.filter((r) => (typeof r.cohort_ids === 'string' ? (JSON.parse(r.cohort_ids) as number[]) : (r.cohort_ids as number[])).includes(cohortId)).map((r) => r.id);
}

import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Dialect } from './database.js';
import type { Database, MessageRunsTable, MessagesTable } from './schema.js';

/** Webhook messages and their runs. The ledger and the batches are in message-ledger-repo.ts. */

type Db = Kysely<Database> | Transaction<Database>;
export type MessageRow = Selectable<MessagesTable>;
export type MessageRunRow = Selectable<MessageRunsTable>;
export type MessageFields = Pick<MessagesTable, 'name' | 'cohort_id' | 'own_cohort' | 'connection_id' | 'kind' | 'enabled' | 'seeded'> & { schedule: unknown; properties: string[] | null };

export const MESSAGE_SCHEDULE_KIND = 'message';
const LIVE_KINDS = ['asap', 'as_met'] as const;

function columns(f: Partial<MessageFields>) {
  const { schedule, properties, ...rest } = f;
  return {
    ...rest,
    ...(schedule !== undefined ? { schedule: JSON.stringify(schedule) } : {}),
    ...(properties !== undefined ? { properties: properties === null ? null : JSON.stringify(properties) } : {}),
  };
}

export async function insertMessage(db: Db, projectId: number, f: MessageFields, now: number): Promise<MessageRow> {
  return db
    .insertInto('messages')
    .values({ project_id: projectId, ...(columns(f) as MessageFields & { schedule: string; properties: string | null }), created_at: now, updated_at: now })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function updateMessage(db: Db, projectId: number, id: number, f: Partial<MessageFields>, now: number): Promise<MessageRow | undefined> {
  return db.updateTable('messages').set({ ...columns(f), updated_at: now }).where('project_id', '=', projectId).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function findMessage(db: Db, projectId: number, id: number): Promise<MessageRow | undefined> {
  return db.selectFrom('messages').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
}

/**
 * The message, its row locked for the caller's transaction (on PostgreSQL; SQLite's one writer
 * serialises anyway), so its runs, batches and seeding take turns. `skip`: answer nothing when
 * another transaction holds it, instead of waiting.
 */
export async function lockMessage(db: Db, dialect: Dialect, id: number, opts: { skip?: boolean } = {}): Promise<MessageRow | undefined> {
  return db
    .selectFrom('messages')
    .selectAll()
    .where('id', '=', id)
    .$if(dialect === 'postgres', (q) => (opts.skip ? q.forUpdate().skipLocked() : q.forUpdate()))
    .executeTakeFirst();
}

export async function listMessages(db: Db, projectId: number, after: number | undefined, limit: number): Promise<MessageRow[]> {
  let q = db.selectFrom('messages').selectAll().where('project_id', '=', projectId);
  if (after !== undefined) q = q.where('id', '>', after);
  return q.orderBy('id').limit(limit).execute();
}

export async function deleteMessageRows(db: Db, id: number): Promise<void> {
  await db.deleteFrom('message_recipients').where('message_id', '=', id).execute();
  await db.deleteFrom('message_batches').where('message_id', '=', id).execute();
  await db.deleteFrom('message_runs').where('message_id', '=', id).execute();
  await db.deleteFrom('messages').where('id', '=', id).execute();
}

/** The cohorts the project's enabled live messages follow (watched by live membership). */
export async function liveMessageCohorts(db: Db, projectId: number): Promise<number[]> {
  const rows = await db.selectFrom('messages').select('cohort_id').distinct().where('project_id', '=', projectId).where('enabled', '=', 1).where('kind', 'in', LIVE_KINDS).execute();
  return rows.map((r) => r.cohort_id);
}

/** Enabled live messages that follow a cohort. */
export async function liveMessagesOf(db: Db, cohortId: number): Promise<MessageRow[]> {
  return db.selectFrom('messages').selectAll().where('cohort_id', '=', cohortId).where('enabled', '=', 1).where('kind', 'in', LIVE_KINDS).orderBy('id').execute();
}

export async function messagesUsingConnection(db: Db, projectId: number, connectionId: number): Promise<number[]> {
  const rows = await db.selectFrom('messages').select('id').where('project_id', '=', projectId).where('connection_id', '=', connectionId).orderBy('id').execute();
  return rows.map((r) => r.id);
}

export async function messagesUsingCohort(db: Db, projectId: number, cohortId: number): Promise<number[]> {
  const rows = await db.selectFrom('messages').select('id').where('project_id', '=', projectId).where('cohort_id', '=', cohortId).orderBy('id').execute();
  return rows.map((r) => r.id);
}

/** Enabled messages with users waiting and due: the batcher's work. */
export async function messagesWithDueUsers(db: Db, now: number): Promise<number[]> {
  const rows = await db
    .selectFrom('messages as m')
    .select('m.id')
    .where('m.enabled', '=', 1)
    .where((eb) => eb.exists(eb.selectFrom('message_recipients as r').select(sql.lit(1).as('one')).whereRef('r.message_id', '=', 'm.id').where('r.state', '=', 'waiting').where('r.due_at', '<=', now)))
    .orderBy('m.id')
    .execute();
  return rows.map((r) => r.id);
}

export async function markSeeded(db: Db, id: number, seeded: boolean): Promise<void> {
  await db.updateTable('messages').set({ seeded: seeded ? 1 : 0 }).where('id', '=', id).execute();
}

/** The message's live run (an ASAP or as-met message has one, made when first needed). */
export async function liveRun(db: Db, messageId: number, now: number): Promise<number> {
  const found = await db.selectFrom('message_runs').select('id').where('message_id', '=', messageId).where('kind', '=', 'live').executeTakeFirst();
  if (found) return found.id;
  return insertRun(db, messageId, 'live', now, now);
}

export async function insertRun(db: Db, messageId: number, kind: MessageRunsTable['kind'], planned: number, now: number): Promise<number> {
  const row = await db
    .insertInto('message_runs')
    .values({ message_id: messageId, kind, planned_at: planned, started_at: now, finished_at: null, users: 0, sent: 0, failed: 0, dropped: 0, outstanding: 0 })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * Moves a run's counters. A scheduled or recurring run is finished when it has no user
 * outstanding; the live run never is.
 */
export async function countRun(db: Db, runId: number, change: { users?: number; sent?: number; failed?: number; dropped?: number; outstanding?: number }, now: number): Promise<void> {
  await db
    .updateTable('message_runs')
    .set((eb) => ({
      users: eb('users', '+', change.users ?? 0),
      sent: eb('sent', '+', change.sent ?? 0),
      failed: eb('failed', '+', change.failed ?? 0),
      dropped: eb('dropped', '+', change.dropped ?? 0),
      outstanding: eb('outstanding', '+', change.outstanding ?? 0),
      finished_at: sql<number | null>`case when kind <> 'live' and outstanding + ${change.outstanding ?? 0} <= 0 then coalesce(finished_at, ${now}) else null end`,
    }))
    .where('id', '=', runId)
    .execute();
}

export async function listRuns(db: Db, messageId: number, before: number | undefined, limit: number): Promise<MessageRunRow[]> {
  let q = db.selectFrom('message_runs').selectAll().where('message_id', '=', messageId);
  if (before !== undefined) q = q.where('id', '<', before);
  return q.orderBy('id', 'desc').limit(limit).execute();
}

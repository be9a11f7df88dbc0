import { sql, type Kysely, type RawBuilder, type Selectable, type Transaction } from 'kysely';
import type { Dialect } from './database.js';
import type { Database, MessageBatchesTable, MessageRecipientsTable } from './schema.js';

/**
 * The ledger of a webhook message (one row per message and user) and its batches. A user is
 * waiting, then queued in a batch, then sent (a 200), failed or dropped. Rows are only ever
 * moved inside the transactions that target users, cut batches and record their endings, so the
 * ledger and the deliveries it causes never disagree.
 */

type Db = Kysely<Database> | Transaction<Database>;
export type RecipientRow = Selectable<MessageRecipientsTable>;
export type BatchRow = Selectable<MessageBatchesTable>;

/** Who may be targeted again, by the message's kind. */
export interface Eligibility {
  /** A recurring message sends again to a user it sent before; the others never do. */
  again: boolean;
  /** The limit's current period and its maximum: a user sent `max` times in it waits for the next. */
  limit?: { period: string; max: number };
}

/**
 * Targets users: those `source` selects (a query answering `distinct_id`) become waiting in the
 * ledger, due now, in run `runId`, unless they are outstanding (waiting or queued) already, or
 * were sent and may not be again. A limited message reserves the send in the period here (given
 * back if it fails). Answers how many were targeted. One statement: a million users never pass
 * through the process.
 */
export async function targetUsers(db: Db, messageId: number, runId: number, source: RawBuilder<unknown>, who: Eligibility, now: number): Promise<number> {
  const states = who.again ? sql`('sent', 'failed', 'dropped')` : sql`('failed', 'dropped')`;
  const period = who.limit?.period ?? null;
  const withinLimit = who.limit ? sql` and (message_recipients.period is null or message_recipients.period <> ${period} or message_recipients.period_sends < ${who.limit.max})` : sql``;
  const periodSends = who.limit ? sql`case when message_recipients.period = ${period} then message_recipients.period_sends + 1 else 1 end` : sql`message_recipients.period_sends`;
  const res = await sql`insert into message_recipients (message_id, distinct_id, state, run_id, batch_id, due_at, attempts, sends, first_sent_at, last_sent_at, period, period_sends, reason, updated_at)
    select ${messageId}, s.distinct_id, 'waiting', ${runId}, null, ${now}, 0, 0, null, null, ${period}, ${who.limit ? 1 : 0}, null, ${now}
    from (${source}) as s where true
    on conflict (message_id, distinct_id) do update set state = 'waiting', run_id = excluded.run_id, batch_id = null, due_at = excluded.due_at,
      attempts = 0, reason = null, updated_at = excluded.updated_at, period = ${who.limit ? sql`${period}` : sql`message_recipients.period`}, period_sends = ${periodSends}
    where message_recipients.state in ${states}${withinLimit}`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/** A query of the distinct ids in `ids` (JSON text of a list). */
export function idList(dialect: Dialect, ids: string[]): RawBuilder<unknown> {
  const json = JSON.stringify(ids);
  return dialect === 'postgres' ? sql`select value as distinct_id from json_array_elements_text(cast(${json} as json))` : sql`select value as distinct_id from json_each(${json})`;
}

/** A query of a live cohort's recorded members. */
export const cohortMemberList = (cohortId: number): RawBuilder<unknown> => sql`select distinct_id from cohort_members where cohort_id = ${cohortId}`;

export interface WaitingUser {
  distinct_id: string;
  run_id: number;
  /** The profile's properties as JSON text; null when the profile is gone. */
  properties: string | null;
  /** Whether the user is a recorded member of the message's cohort (asked of live messages only; true for the others). */
  member: boolean;
}

/** The next waiting users due, in due order, with their profiles as they are now. */
export async function waitingUsers(db: Db, dialect: Dialect, m: { id: number; projectId: number; cohortId: number; live: boolean }, now: number, limit: number): Promise<WaitingUser[]> {
  const props = dialect === 'postgres' ? sql`p.properties::text` : sql`json(p.properties)`;
  // Only a live message asks whether its users are still members (the others' were just evaluated).
  const member = m.live ? sql`(select 1 from cohort_members as c where c.cohort_id = ${m.cohortId} and c.distinct_id = r.distinct_id)` : sql`1`;
  const { rows } = await sql<{ distinct_id: string; run_id: number; properties: string | null; member: number | null }>`
    select r.distinct_id, r.run_id, ${props} as properties, ${member} as member
    from message_recipients as r left join profiles as p on p.project_id = ${m.projectId} and p.distinct_id = r.distinct_id
    where r.message_id = ${m.id} and r.state = 'waiting' and r.due_at <= ${now}
    order by r.due_at, r.distinct_id limit ${limit}`.execute(db);
  return rows.map((r) => ({ distinct_id: r.distinct_id, run_id: Number(r.run_id), properties: r.properties, member: r.member !== null }));
}

/** Waiting users that will not be sent (their profile is gone, or they no longer match a live message). */
export async function dropUsers(db: Db, messageId: number, ids: string[], reason: string, now: number): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('message_recipients')
    .set((eb) => ({ state: 'dropped', reason, updated_at: now, period_sends: sql<number>`case when ${eb.ref('period_sends')} > 0 then ${eb.ref('period_sends')} - 1 else 0 end` }))
    .where('message_id', '=', messageId)
    .where('distinct_id', 'in', ids)
    .where('state', '=', 'waiting')
    .execute();
}

/** A batch to write: its users, and how many of them each run holds. */
export interface NewBatch {
  ids: string[];
  runs: Map<number, number>;
}

/** Batch rows, in order; answers their ids. */
export async function insertBatches(db: Db, messageId: number, batches: NewBatch[], retry: boolean, now: number): Promise<number[]> {
  if (batches.length === 0) return [];
  const rows = await db
    .insertInto('message_batches')
    .values(
      batches.map((b) => ({
        message_id: messageId,
        delivery_id: null,
        user_ids: JSON.stringify(b.ids),
        users: b.ids.length,
        runs: JSON.stringify(Object.fromEntries(b.runs)),
        retry: retry ? 1 : 0,
        created_at: now,
        finished_at: null,
        outcome: null,
        status: null,
        reason: null,
      })),
    )
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

export async function setBatchDeliveries(db: Db, pairs: { batchId: number; deliveryId: number }[]): Promise<void> {
  if (pairs.length === 0) return;
  await db
    .updateTable('message_batches')
    .set({ delivery_id: sql<number>`case id ${sql.join(pairs.map((p) => sql`when ${p.batchId} then cast(${p.deliveryId} as bigint)`), sql` `)} end` })
    .where(
      'id',
      'in',
      pairs.map((p) => p.batchId),
    )
    .execute();
}

/** Waiting users put in their batches. */
export async function queueUsers(db: Db, messageId: number, batches: { batchId: number; ids: string[] }[], now: number): Promise<void> {
  // A statement per batch: measured faster on SQLite than one statement telling the batches apart with CASE … IN.
  for (const b of batches) {
    await db.updateTable('message_recipients').set({ state: 'queued', batch_id: b.batchId, updated_at: now }).where('message_id', '=', messageId).where('distinct_id', 'in', b.ids).where('state', '=', 'waiting').execute();
  }
}

/** Deliveries of the message's batches not yet ended: what is in the outbox. */
export async function openBatchDeliveries(db: Db, messageId: number): Promise<number[]> {
  const rows = await db.selectFrom('message_batches').select('delivery_id').where('message_id', '=', messageId).where('finished_at', 'is', null).execute();
  return rows.flatMap((r) => (r.delivery_id === null ? [] : [r.delivery_id]));
}

/** How many of the message's batches are in the outbox. */
export async function countOpenBatches(db: Db, messageId: number): Promise<number> {
  const row = await db.selectFrom('message_batches').select((eb) => eb.fn.countAll<number>().as('n')).where('message_id', '=', messageId).where('finished_at', 'is', null).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** A batch not yet ended (undefined when it ended, or its message is gone). */
export async function openBatch(db: Db, batchId: number): Promise<BatchRow | undefined> {
  return db.selectFrom('message_batches').selectAll().where('id', '=', batchId).where('finished_at', 'is', null).executeTakeFirst();
}

export async function endBatch(db: Db, batchId: number, end: { outcome: 'sent' | 'failed'; status: number | null; reason: string | null }, now: number): Promise<void> {
  await db.updateTable('message_batches').set({ ...end, finished_at: now }).where('id', '=', batchId).execute();
}

/** A batch's users acknowledged with a 200: sent. */
export async function markSent(db: Db, messageId: number, batchId: number, ids: string[], now: number): Promise<void> {
  await db
    .updateTable('message_recipients')
    .set((eb) => ({ state: 'sent', sends: eb('sends', '+', 1), first_sent_at: eb.fn.coalesce('first_sent_at', eb.val(now)), last_sent_at: now, attempts: 0, reason: null, updated_at: now }))
    .where('message_id', '=', messageId)
    .where('distinct_id', 'in', ids)
    .where('batch_id', '=', batchId)
    .where('state', '=', 'queued')
    .execute();
}

/**
 * A batch's users not acknowledged: waiting again after `retryAt(attempts)` (live messages), or
 * failed until the message's next run targets them again; either way their reserved send in the
 * limit's period is given back.
 */
export async function markUnsent(db: Db, messageId: number, batchId: number, ids: string[], reason: string, retry: { baseMs: number; maxMs: number } | undefined, now: number): Promise<void> {
  await db
    .updateTable('message_recipients')
    .set((eb) => ({
      ...(retry
        ? { state: 'waiting' as const, due_at: sql<number>`${now} + ${backoff(retry)}` }
        : { state: 'failed' as const, period_sends: sql<number>`case when ${eb.ref('period_sends')} > 0 then ${eb.ref('period_sends')} - 1 else 0 end` }),
      attempts: eb('attempts', '+', 1),
      reason,
      updated_at: now,
    }))
    .where('message_id', '=', messageId)
    .where('distinct_id', 'in', ids)
    .where('batch_id', '=', batchId)
    .where('state', '=', 'queued')
    .execute();
}

/** base × 2^attempts, at most max (the shift is capped: 2^20 × any base is past any sane max). */
function backoff(r: { baseMs: number; maxMs: number }): RawBuilder<number> {
  const grown = sql`cast(${r.baseMs} as bigint) * (1 << (case when attempts > 20 then 20 else attempts end))`;
  return sql<number>`(case when ${grown} > ${r.maxMs} then cast(${r.maxMs} as bigint) else ${grown} end)`;
}

export interface RecipientView extends RecipientRow {
  delivery_id: number | null;
}

/** The ledger, by distinct id, with the last batch's delivery. */
export async function listRecipients(db: Db, messageId: number, q: { after?: string; state?: MessageRecipientsTable['state']; distinctId?: string; limit: number }): Promise<RecipientView[]> {
  let query = db
    .selectFrom('message_recipients as r')
    .leftJoin('message_batches as b', 'b.id', 'r.batch_id')
    .selectAll('r')
    .select('b.delivery_id')
    .where('r.message_id', '=', messageId);
  if (q.after !== undefined) query = query.where('r.distinct_id', '>', q.after);
  if (q.state !== undefined) query = query.where('r.state', '=', q.state);
  if (q.distinctId !== undefined) query = query.where('r.distinct_id', '=', q.distinctId);
  return query.orderBy('r.distinct_id').limit(q.limit).execute();
}

/** `count` profiles of the project picked at random (a test send's users), with their properties as JSON text. */
export async function randomProfiles(db: Db, dialect: Dialect, projectId: number, count: number): Promise<{ distinct_id: string; properties: string }[]> {
  const props = dialect === 'postgres' ? sql`properties::text` : sql`json(properties)`;
  const total = Number((await db.selectFrom('profiles').select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', projectId).executeTakeFirstOrThrow()).n);
  const offsets = new Set<number>();
  while (offsets.size < Math.min(count, total)) offsets.add(Math.floor(Math.random() * total));
  const out: { distinct_id: string; properties: string }[] = [];
  // One indexed step to each offset: no sort of the whole table, as ORDER BY random() would make.
  for (const offset of offsets) {
    const { rows } = await sql<{ distinct_id: string; properties: string }>`select distinct_id, ${props} as properties from profiles where project_id = ${projectId} order by distinct_id limit 1 offset ${offset}`.execute(db);
    if (rows[0]) out.push(rows[0]);
  }
  return out;
}

/** A query of the project's profiles matching a compiled cohort condition (on `profiles as p`). */
export const matchingProfiles = (projectId: number, condition: RawBuilder<boolean>): RawBuilder<unknown> =>
  sql`select p.distinct_id from profiles as p where p.project_id = ${projectId} and ${condition}`;

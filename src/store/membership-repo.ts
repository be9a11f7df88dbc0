import { sql, type Kysely, type RawBuilder, type Selectable, type Transaction } from 'kysely';
import type { Dialect } from './database.js';
import { profilePropertiesText } from './json-sql.js';
import { readJson, type CohortWatchesTable, type Database } from './schema.js';

/**
 * Live cohort membership: which cohorts are watched, their members, and the profiles waiting to
 * be evaluated against them. A condition is a compiled definition on `profiles as p`.
 */

type Db = Kysely<Database> | Transaction<Database>;
type Trx = Transaction<Database>;
export type WatchRow = Selectable<CohortWatchesTable>;

/** Makes `cohortIds` the project's watched cohorts: new ones start as baseline; dropped ones lose their members. */
export async function setWatches(trx: Trx, projectId: number, cohortIds: number[], now: number): Promise<void> {
  const current = await trx.selectFrom('cohort_watches').select('cohort_id').where('project_id', '=', projectId).execute();
  const want = new Set(cohortIds);
  const gone = current.map((c) => c.cohort_id).filter((id) => !want.has(id));
  const have = new Set(current.map((c) => c.cohort_id));
  const added = cohortIds.filter((id) => !have.has(id));
  if (gone.length > 0) {
    await trx.deleteFrom('cohort_members').where('cohort_id', 'in', gone).execute();
    await trx.deleteFrom('cohort_watches').where('cohort_id', 'in', gone).execute();
  }
  if (added.length > 0) await trx.insertInto('cohort_watches').values(added.map((cohort_id) => ({ cohort_id, project_id: projectId, state: 'baseline' as const, since: now }))).execute();
}

export async function watchesOf(db: Db, projectId: number): Promise<WatchRow[]> {
  return db.selectFrom('cohort_watches').selectAll().where('project_id', '=', projectId).orderBy('cohort_id').execute();
}

/** Whether a cohort is watched with its members recorded (live), still waiting for them (baseline), or not at all. */
export async function watchState(db: Db, cohortId: number): Promise<WatchRow['state'] | undefined> {
  return (await db.selectFrom('cohort_watches').select('state').where('cohort_id', '=', cohortId).executeTakeFirst())?.state;
}

export async function projectsWithWatches(db: Db): Promise<number[]> {
  return (await db.selectFrom('cohort_watches').select('project_id').distinct().execute()).map((r) => r.project_id);
}

export async function allWatches(db: Db): Promise<WatchRow[]> {
  return db.selectFrom('cohort_watches').selectAll().orderBy('cohort_id').execute();
}

/** Profiles to evaluate again; written in the transaction that changed them. */
export async function markDirty(db: Db, projectId: number, distinctIds: string[], now: number): Promise<void> {
  const ids = [...new Set(distinctIds)];
  for (let i = 0; i < ids.length; i += 500) {
    await db
      .insertInto('dirty_profiles')
      .values(ids.slice(i, i + 500).map((distinct_id) => ({ project_id: projectId, distinct_id, marked_at: now })))
      .onConflict((oc) => oc.columns(['project_id', 'distinct_id']).doNothing())
      .execute();
  }
}

/** Takes up to `limit` dirty profiles of one project (deleted in the caller's transaction, which evaluates them). */
export async function takeDirty(trx: Trx, dialect: Dialect, limit: number): Promise<{ projectId: number; ids: string[] } | undefined> {
  const first = await trx
    .selectFrom('dirty_profiles')
    .select('project_id')
    .orderBy('marked_at')
    .limit(1)
    .$if(dialect === 'postgres', (q) => q.forUpdate().skipLocked())
    .executeTakeFirst();
  if (!first) return undefined;
  const rows = await trx
    .selectFrom('dirty_profiles')
    .select('distinct_id')
    .where('project_id', '=', first.project_id)
    .orderBy('marked_at')
    .limit(limit)
    .$if(dialect === 'postgres', (q) => q.forUpdate().skipLocked())
    .execute();
  const ids = rows.map((r) => r.distinct_id);
  if (ids.length > 0) await trx.deleteFrom('dirty_profiles').where('project_id', '=', first.project_id).where('distinct_id', 'in', ids).execute();
  return { projectId: first.project_id, ids };
}

export async function hasDirty(db: Db): Promise<boolean> {
  return (await db.selectFrom('dirty_profiles').select('project_id').limit(1).executeTakeFirst()) !== undefined;
}

/** Which of `ids` are recorded members of the cohort. */
export async function recordedMembers(db: Db, cohortId: number, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.selectFrom('cohort_members').select('distinct_id').where('cohort_id', '=', cohortId).where('distinct_id', 'in', ids).execute();
  return new Set(rows.map((r) => r.distinct_id));
}

/** Which of `ids` match the condition now. */
export async function matchingAmong(db: Db, projectId: number, condition: RawBuilder<boolean>, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.selectFrom('profiles as p').select('p.distinct_id').where('p.project_id', '=', projectId).where('p.distinct_id', 'in', ids).where(condition).execute();
  return new Set(rows.map((r) => r.distinct_id));
}

/**
 * Records members; answers those that were not members before. Two transactions adding the same
 * member (the evaluator and the sweep on PostgreSQL) take turns on its row: only one sees it new,
 * so only one emits its event.
 */
export async function addMembers(trx: Trx, cohortId: number, ids: string[], now: number): Promise<string[]> {
  const added: string[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await trx
      .insertInto('cohort_members')
      .values(ids.slice(i, i + 500).map((distinct_id) => ({ cohort_id: cohortId, distinct_id, since: now })))
      .onConflict((oc) => oc.columns(['cohort_id', 'distinct_id']).doNothing())
      .returning('distinct_id')
      .execute();
    for (const r of rows) added.push(r.distinct_id);
  }
  return added;
}

/** Removes members; answers those that were members (as addMembers, so one remover emits). */
export async function removeMembers(trx: Trx, cohortId: number, ids: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await trx.deleteFrom('cohort_members').where('cohort_id', '=', cohortId).where('distinct_id', 'in', ids.slice(i, i + 500)).returning('distinct_id').execute();
    for (const r of rows) removed.push(r.distinct_id);
  }
  return removed;
}

/**
 * Records the cohort's members as they are now, in one statement, and makes the watch live (with
 * no condition, one that cannot be evaluated: live, with no members).
 */
export async function recordBaseline(trx: Trx, dialect: Dialect, watch: { cohortId: number; projectId: number }, condition: RawBuilder<boolean> | undefined, now: number): Promise<number | undefined> {
  // One process records a baseline: the watch row is locked (on SQLite the write lock is the
  // database's), and one another process already made live is left alone.
  const pending = await trx
    .selectFrom('cohort_watches')
    .select('cohort_id')
    .where('cohort_id', '=', watch.cohortId)
    .where('state', '=', 'baseline')
    .$if(dialect === 'postgres', (q) => q.forUpdate().skipLocked())
    .executeTakeFirst();
  if (!pending) return undefined;
  await trx.deleteFrom('cohort_members').where('cohort_id', '=', watch.cohortId).execute();
  const res = await sql`insert into cohort_members (cohort_id, distinct_id, since)
    select ${watch.cohortId}, p.distinct_id, ${now} from profiles as p where p.project_id = ${watch.projectId} and ${condition ?? sql`1 = 0`}`.execute(trx);
  await trx.updateTable('cohort_watches').set({ state: 'live', since: now }).where('cohort_id', '=', watch.cohortId).execute();
  return Number(res.numAffectedRows ?? 0);
}

export async function membersOf(db: Db, cohortId: number): Promise<string[]> {
  return (await db.selectFrom('cohort_members').select('distinct_id').where('cohort_id', '=', cohortId).execute()).map((r) => r.distinct_id);
}

/**
 * One slice of a sweep: the next `chunk` profiles after `after` (in the key's order), and who in
 * that key range entered (matches, not recorded) or exited (recorded, no longer matches, or gone).
 * `last` is where the next slice starts, or null after the last one (whose range is open-ended, so
 * members past the last profile are seen). Slices keep each statement short: on SQLite the
 * sweep never holds the one connection long enough to stall ingestion.
 */
export async function sweepSlice(db: Db, watch: { cohortId: number; projectId: number }, condition: RawBuilder<boolean>, after: string | null, chunk: number): Promise<{ entered: string[]; exited: string[]; last: string | null }> {
  const bound = await db
    .selectFrom('profiles')
    .select('distinct_id')
    .where('project_id', '=', watch.projectId)
    .$if(after !== null, (q) => q.where('distinct_id', '>', after!))
    .orderBy('distinct_id')
    .offset(chunk - 1)
    .limit(1)
    .executeTakeFirst();
  const last = bound?.distinct_id ?? null;
  const lower = after === null ? sql`` : sql` and p.distinct_id > ${after}`;
  const upper = last === null ? sql`` : sql` and p.distinct_id <= ${last}`;
  const entered = await sql<{ distinct_id: string }>`select p.distinct_id from profiles as p
    where p.project_id = ${watch.projectId}${lower}${upper} and ${condition}
      and not exists (select 1 from cohort_members as m where m.cohort_id = ${watch.cohortId} and m.distinct_id = p.distinct_id)`.execute(db);
  const exited = await sql<{ distinct_id: string }>`select m.distinct_id from cohort_members as m
    where m.cohort_id = ${watch.cohortId}${after === null ? sql`` : sql` and m.distinct_id > ${after}`}${last === null ? sql`` : sql` and m.distinct_id <= ${last}`}
      and not exists (select 1 from profiles as p where p.project_id = ${watch.projectId} and p.distinct_id = m.distinct_id and ${condition})`.execute(db);
  return { entered: entered.rows.map((r) => r.distinct_id), exited: exited.rows.map((r) => r.distinct_id), last };
}

/** The member forms of some users: the cohort-sync page member and the message user, as events carry them. */
export async function memberForms(db: Db, dialect: Dialect, projectId: number, ids: string[]): Promise<Map<string, { sync: string; properties: Record<string, unknown> }>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom('profiles')
    .select(['distinct_id', 'sync_member', profilePropertiesText(dialect, 'properties').as('properties')])
    .where('project_id', '=', projectId)
    .where('distinct_id', 'in', ids)
    .execute();
  return new Map(rows.map((r) => [r.distinct_id, { sync: r.sync_member, properties: readJson(r.properties) }]));
}

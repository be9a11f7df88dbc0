import { sql, type Insertable, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { CohortSyncsTable, Database, SyncRunsTable } from './schema.js';
import { stopQueuedPages } from './sync-pages-repo.js';

/**
 * Cohort syncs and their runs. A sync's schedule (its next run) is a row of `schedules` (kind
 * 'cohort-sync', key the sync's id): read here beside the sync for the API.
 */

type Db = Kysely<Database> | Transaction<Database>;
type Trx = Transaction<Database>;
export type SyncRow = Selectable<CohortSyncsTable>;
export type RunRow = Selectable<SyncRunsTable>;
/** A sync as the API shows it: with its next run from the schedule. */
export type SyncView = SyncRow & { next_run_at: number | null };

export const SYNC_SCHEDULE_KIND = 'cohort-sync';

function withSchedule(db: Db) {
  return db
    .selectFrom('cohort_syncs as s')
    .leftJoin('schedules as j', (join) => join.on('j.kind', '=', SYNC_SCHEDULE_KIND).on('j.key', '=', sql<string>`cast(s.id as text)`))
    .selectAll('s')
    .select('j.next_run_at');
}

export async function insertSync(trx: Trx, row: Insertable<CohortSyncsTable>): Promise<SyncRow> {
  return trx.insertInto('cohort_syncs').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findSync(db: Db, projectId: number, id: number): Promise<SyncView | undefined> {
  return withSchedule(db).where('s.project_id', '=', projectId).where('s.id', '=', id).executeTakeFirst();
}

export async function listSyncs(db: Db, projectId: number, after: number | undefined, limit: number): Promise<SyncView[]> {
  let q = withSchedule(db).where('s.project_id', '=', projectId);
  if (after !== undefined) q = q.where('s.id', '>', after);
  return q.orderBy('s.id').limit(limit).execute();
}

/**
 * The sync's row, locked for the transaction (an UPDATE takes the row lock on PostgreSQL; SQLite
 * has one writer): two processes never start or resume the same sync's run at once.
 */
export async function lockSync(trx: Trx, id: number, now: number): Promise<SyncRow | undefined> {
  return trx.updateTable('cohort_syncs').set({ updated_at: now }).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function setSyncState(db: Db, id: number, state: SyncRow['state'], reason: string | null, now: number): Promise<SyncRow | undefined> {
  return db.updateTable('cohort_syncs').set({ state, state_reason: reason, updated_at: now }).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function findRun(db: Db, id: number): Promise<RunRow | undefined> {
  return db.selectFrom('sync_runs').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listRuns(db: Db, syncId: number, before: number | undefined, limit: number): Promise<RunRow[]> {
  let q = db.selectFrom('sync_runs').selectAll().where('sync_id', '=', syncId);
  if (before !== undefined) q = q.where('id', '<', before);
  return q.orderBy('id', 'desc').limit(limit).execute();
}

export async function insertRun(trx: Trx, row: Omit<Insertable<SyncRunsTable>, 'stale'>): Promise<number> {
  const run = await trx.insertInto('sync_runs').values({ ...row, stale: 0 }).returning('id').executeTakeFirstOrThrow();
  return run.id;
}

/** A run's page and member totals, once its pages are cut; it becomes its sync's current run. */
export async function setRunPlanned(trx: Trx, run: { id: number; syncId: number }, totals: Pick<RunRow, 'total_pages' | 'members' | 'members_added' | 'members_removed'>, now: number): Promise<void> {
  await trx.updateTable('sync_runs').set(totals).where('id', '=', run.id).execute();
  await trx.updateTable('cohort_syncs').set({ current_run_id: run.id, updated_at: now }).where('id', '=', run.syncId).execute();
}

/** A failed or paused run goes on (resumed, not restarted). */
export async function resumeRun(trx: Trx, runId: number): Promise<void> {
  await trx.updateTable('sync_runs').set({ state: 'running', error: null }).where('id', '=', runId).execute();
}

/** A run too old to resume: its data may go (stale). */
export async function abandonRun(trx: Trx, runId: number, now: number): Promise<void> {
  await trx.updateTable('sync_runs').set({ state: 'abandoned', finished_at: now, stale: 1 }).where('id', '=', runId).execute();
}

/** One more page acknowledged; answers the run as it is now (the UPDATE locks it: endings of one run's pages take turns). */
export async function countAck(trx: Trx, runId: number): Promise<RunRow> {
  return trx.updateTable('sync_runs').set((eb) => ({ pages_acked: eb('pages_acked', '+', 1) })).where('id', '=', runId).returningAll().executeTakeFirstOrThrow();
}

/**
 * Every page acknowledged: the run succeeded and its snapshot becomes the sync's base (a one-time
 * sync is done); the previous base is no longer read by anyone (stale). Answers whether there was one.
 */
export async function completeRun(trx: Trx, run: Pick<RunRow, 'id' | 'sync_id' | 'started_at'>, now: number): Promise<boolean> {
  await trx.updateTable('sync_runs').set({ state: 'succeeded', finished_at: now }).where('id', '=', run.id).execute();
  const sync = await trx.selectFrom('cohort_syncs').select(['interval_ms', 'base_run_id']).where('id', '=', run.sync_id).executeTakeFirstOrThrow();
  await trx
    .updateTable('cohort_syncs')
    .set({ base_run_id: run.id, base_at: run.started_at, current_run_id: null, updated_at: now, ...(sync.interval_ms === null ? { state: 'done' as const } : {}) })
    .where('id', '=', run.sync_id)
    .execute();
  if (sync.base_run_id === null) return false;
  await trx.updateTable('sync_runs').set({ stale: 1 }).where('id', '=', sync.base_run_id).execute();
  return true;
}

/** A running run failed or paused with `reason`; answers its sync, or undefined when it was not running. */
export async function endRun(trx: Trx, runId: number, state: 'failed' | 'paused', reason: string): Promise<number | undefined> {
  const run = await trx.updateTable('sync_runs').set({ state, error: reason }).where('id', '=', runId).where('state', '=', 'running').returning(['sync_id']).executeTakeFirst();
  return run?.sync_id;
}

/** The fields every page of a run is built with (fixed for the run). */
export async function runEnvelope(db: Db, runId: number) {
  const run = await db.selectFrom('sync_runs').select(['sync_id', 'session_id', 'total_pages', 'cohort_name', 'cohort_description']).where('id', '=', runId).executeTakeFirstOrThrow();
  const sync = await db.selectFrom('cohort_syncs').select(['project_id', 'cohort_id', 'connection_id', 'properties_to_export']).where('id', '=', run.sync_id).executeTakeFirstOrThrow();
  return { run, sync };
}

/** Deletes a sync, its runs, their data and its schedule; its current run's queued pages are cancelled first. */
export async function deleteSync(trx: Trx, id: number, now: number): Promise<void> {
  const current = (await trx.selectFrom('cohort_syncs').select('current_run_id').where('id', '=', id).executeTakeFirst())?.current_run_id;
  // Pages waiting in the outbox are not sent for a sync that is gone (only its current run queues any).
  if (current != null) await stopQueuedPages(trx, current, 'the cohort sync was deleted', now);
  const runs = trx.selectFrom('sync_runs').select('id').where('sync_id', '=', id);
  await trx.deleteFrom('sync_snapshots').where('run_id', 'in', runs).execute();
  await trx.deleteFrom('sync_pages').where('run_id', 'in', runs).execute();
  await trx.deleteFrom('sync_page_ids').where('run_id', 'in', runs).execute();
  await trx.deleteFrom('sync_runs').where('sync_id', '=', id).execute();
  await trx.deleteFrom('cohort_syncs').where('id', '=', id).execute();
  await trx.deleteFrom('schedules').where('kind', '=', SYNC_SCHEDULE_KIND).where('key', '=', String(id)).execute();
}

/** The cohort syncs that send to a connection (it cannot be deleted under them). */
export async function syncsUsingConnection(db: Db, projectId: number, connectionId: number): Promise<number[]> {
  const rows = await db.selectFrom('cohort_syncs').select('id').where('project_id', '=', projectId).where('connection_id', '=', connectionId).orderBy('id').execute();
  return rows.map((r) => r.id);
}

/** The cohort syncs of a cohort (it cannot be deleted under them). */
export async function syncsUsingCohort(db: Db, projectId: number, cohortId: number): Promise<number[]> {
  const rows = await db.selectFrom('cohort_syncs').select('id').where('project_id', '=', projectId).where('cohort_id', '=', cohortId).orderBy('id').execute();
  return rows.map((r) => r.id);
}

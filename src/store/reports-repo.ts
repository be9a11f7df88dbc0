import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Database, ReportsTable } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;
export type ReportRow = Selectable<ReportsTable>;

export async function insertReport(db: Db, projectId: number, f: { name: string; type: ReportsTable['type']; query: unknown }, now: number): Promise<ReportRow> {
  return db
    .insertInto('reports')
    .values({ project_id: projectId, name: f.name, type: f.type, query: JSON.stringify(f.query), created_at: now, updated_at: now })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function updateReport(db: Db, projectId: number, id: number, f: { name: string; type: ReportsTable['type']; query: unknown }, now: number): Promise<ReportRow | undefined> {
  return db.updateTable('reports').set({ name: f.name, type: f.type, query: JSON.stringify(f.query), updated_at: now }).where('project_id', '=', projectId).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function findReport(db: Db, projectId: number, id: number): Promise<ReportRow | undefined> {
  return db.selectFrom('reports').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
}

export async function reportById(db: Db, id: number): Promise<ReportRow | undefined> {
  return db.selectFrom('reports').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listReports(db: Db, projectId: number, after: number | undefined, limit: number): Promise<ReportRow[]> {
  let q = db.selectFrom('reports').selectAll().where('project_id', '=', projectId);
  if (after !== undefined) q = q.where('id', '>', after);
  return q.orderBy('id').limit(limit).execute();
}

export async function deleteReport(db: Db, projectId: number, id: number): Promise<boolean> {
  const res = await db.deleteFrom('reports').where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

/** Alerts on a report (it cannot be deleted under them). */
export async function alertsOnReport(db: Db, projectId: number, reportId: number): Promise<number[]> {
  return (await db.selectFrom('alerts').select('id').where('project_id', '=', projectId).where('report_id', '=', reportId).orderBy('id').execute()).map((r) => r.id);
}

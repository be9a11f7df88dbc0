import type { Insertable, Kysely, Selectable, Transaction } from 'kysely';
import type { AlertChecksTable, AlertsTable, Database } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;
export type AlertRow = Selectable<AlertsTable>;
export type AlertCheckRow = Selectable<AlertChecksTable>;
export type AlertFields = Pick<AlertsTable, 'name' | 'report_id' | 'segment' | 'frequency' | 'creator' | 'creator_email'> & { condition: unknown; windows: unknown; channels: unknown };

const columns = (f: AlertFields) => ({ ...f, condition: JSON.stringify(f.condition), windows: f.windows === null ? null : JSON.stringify(f.windows), channels: JSON.stringify(f.channels) });

export async function insertAlert(db: Db, projectId: number, f: AlertFields, now: number): Promise<AlertRow> {
  return db
    .insertInto('alerts')
    .values({ project_id: projectId, ...columns(f), state: 'active', state_reason: null, quiet_until: null, checked_to: null, last_fired_at: null, created_at: now, updated_at: now })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** A changed alert is checked afresh: active, not muted. */
export async function updateAlert(db: Db, projectId: number, id: number, f: AlertFields, now: number): Promise<AlertRow | undefined> {
  return db
    .updateTable('alerts')
    .set({ ...columns(f), state: 'active', state_reason: null, quiet_until: null, updated_at: now })
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function findAlert(db: Db, projectId: number, id: number): Promise<AlertRow | undefined> {
  return db.selectFrom('alerts').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
}

export async function listAlerts(db: Db, projectId: number, after: number | undefined, limit: number): Promise<AlertRow[]> {
  let q = db.selectFrom('alerts').selectAll().where('project_id', '=', projectId);
  if (after !== undefined) q = q.where('id', '>', after);
  return q.orderBy('id').limit(limit).execute();
}

export async function deleteAlert(db: Db, projectId: number, id: number): Promise<boolean> {
  await db.deleteFrom('alert_checks').where('alert_id', 'in', db.selectFrom('alerts').select('id').where('project_id', '=', projectId).where('id', '=', id)).execute();
  const res = await db.deleteFrom('alerts').where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

/** Active alerts after `after`, by report (the checker computes each report once for all its alerts). */
export async function activeAlerts(db: Db, after: number, limit: number): Promise<AlertRow[]> {
  return db.selectFrom('alerts').selectAll().where('state', '=', 'active').where('id', '>', after).orderBy('id').limit(limit).execute();
}

/** The alert as checked: the bucket it reached, and (when it notified) until when it is quiet. */
export async function markChecked(db: Db, id: number, change: { checkedTo: number; firedAt?: number; quietUntil?: number }, now: number): Promise<void> {
  await db
    .updateTable('alerts')
    .set({ checked_to: change.checkedTo, ...(change.firedAt !== undefined ? { last_fired_at: change.firedAt, quiet_until: change.quietUntil ?? null } : {}), updated_at: now })
    .where('id', '=', id)
    .execute();
}

/** Answers whether this call made it invalid (it was active). */
export async function invalidateAlert(db: Db, id: number, reason: string, now: number): Promise<boolean> {
  const res = await db.updateTable('alerts').set({ state: 'invalid', state_reason: reason, updated_at: now }).where('id', '=', id).where('state', '=', 'active').executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function insertChecks(db: Db, rows: Insertable<AlertChecksTable>[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 200) await db.insertInto('alert_checks').values(rows.slice(i, i + 200)).execute();
}

export async function alertHistory(db: Db, alertId: number, before: number | undefined, limit: number): Promise<AlertCheckRow[]> {
  let q = db.selectFrom('alert_checks').selectAll().where('alert_id', '=', alertId);
  if (before !== undefined) q = q.where('id', '<', before);
  return q.orderBy('id', 'desc').limit(limit).execute();
}

/** Alerts whose channels use a connection (it cannot be deleted under them). */
export async function alertsUsingConnection(db: Db, projectId: number, connectionId: number): Promise<number[]> {
  const rows = await db.selectFrom('alerts').select(['id', 'channels']).where('project_id', '=', projectId).execute();
  return rows
    .filter((r) => (typeof r.channels === 'string' ? (JSON.parse(r.channels) as { connection_id?: number }[]) : (r.channels as { connection_id?: number }[])).some((c) => c.connection_id === connectionId))
    .map((r) => r.id);
}

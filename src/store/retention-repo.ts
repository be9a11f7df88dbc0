import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';

/**
 * Retention's statements (retention/pruner.ts). Each `*Slice` removes at most `limit` rows in the
 * caller's transaction and says whether its kind has nothing more to remove below the horizon. Rows
 * are found in key order from a cursor, reading at most `limit` of them, so a slice's cost is bounded
 * by its limit however much of the table is younger than the horizon or must be kept.
 */

type Db = Kysely<Database> | Transaction<Database>;

export interface Slice<C = number> {
  /** Rows removed (or, for bodies, emptied). */
  removed: number;
  /** Where the next slice of this kind starts. */
  cursor: C;
  /** Nothing more to do below the horizon. */
  done: boolean;
}

/** A kind's slice: from `cursor` (undefined: the start), at most `limit` rows, below `horizon` (ms since the epoch). */
export type SliceOf<C> = (trx: Transaction<Database>, cursor: C | undefined, limit: number, horizon: number) => Promise<Slice<C>>;

/**
 * The deliveries that a run which can still resume (running, failed, paused) may send again: its
 * failed and stopped pages are requeued as they are, same body, same webhook-id. Never pruned, nor
 * their bodies. From the few resumable runs to their pages (the pages' key leads with the run).
 */
export const resumablePageDeliveries = (db: Db) =>
  db
    .selectFrom('sync_pages')
    .select('delivery_id')
    .where('run_id', 'in', db.selectFrom('sync_runs').select('id').where('state', 'in', ['running', 'failed', 'paused']));

async function neededDeliveries(db: Db, ids: number[]): Promise<Set<number>> {
  if (ids.length === 0) return new Set();
  const rows = await resumablePageDeliveries(db).where('delivery_id', 'in', ids).execute();
  return new Set(rows.map((r) => Number(r.delivery_id)));
}

/** Sync runs (as r) that ended before the horizon and are neither a sync's base (the next diff's snapshot) nor its current run (which may resume). */
export const finishedRuns = (db: Db, horizon: number) =>
  db
    .selectFrom('sync_runs as r')
    .where('r.state', 'in', ['succeeded', 'abandoned'])
    .where('r.finished_at', '<', horizon)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('cohort_syncs as s').select('s.id').where((w) => w.or([w('s.base_run_id', '=', w.ref('r.id')), w('s.current_run_id', '=', w.ref('r.id'))])))));

/** The next `limit` deliveries from `cursor` in id order: the ones older than the horizon that are finished and not needed. */
async function finishedDeliveries(db: Db, cursor: number, limit: number, horizon: number, extra: 'rows' | 'bodies'): Promise<{ ids: number[]; cursor: number; done: boolean }> {
  const rows = await db
    .selectFrom('deliveries')
    .select(['id', 'state', 'created_at', 'completed_at', 'body_pruned_at'])
    .where('id', '>', cursor)
    .orderBy('id')
    .limit(limit)
    .execute();
  // Ids follow creation, and a delivery ends after it was made: the first one made after the
  // horizon ends the scan.
  const younger = rows.findIndex((r) => r.created_at >= horizon);
  const scanned = younger === -1 ? rows : rows.slice(0, younger);
  const done = younger !== -1 || rows.length < limit;
  const candidates = scanned.filter((r) => r.state !== 'pending' && r.completed_at !== null && r.completed_at < horizon && (extra === 'rows' || r.body_pruned_at === null));
  const needed = await neededDeliveries(db, candidates.map((r) => r.id));
  return { ids: candidates.filter((r) => !needed.has(r.id)).map((r) => r.id), cursor: scanned.at(-1)?.id ?? cursor, done };
}

/** Finished deliveries older than the horizon, with their attempt log and stored bodies. */
export async function deliveriesSlice(trx: Transaction<Database>, cursor = 0, limit: number, horizon: number): Promise<Slice> {
  const found = await finishedDeliveries(trx, cursor, limit, horizon, 'rows');
  if (found.ids.length > 0) {
    await trx.deleteFrom('delivery_attempts').where('delivery_id', 'in', found.ids).execute();
    await trx.deleteFrom('delivery_bodies').where('delivery_id', 'in', found.ids).execute();
    await trx.deleteFrom('deliveries').where('id', 'in', found.ids).execute();
  }
  return { removed: found.ids.length, cursor: found.cursor, done: found.done };
}

/** Empties the bodies of finished deliveries older than the horizon (the rows and attempt log stay). */
export async function bodiesSlice(trx: Transaction<Database>, cursor: number, limit: number, horizon: number, now: number): Promise<Slice> {
  const found = await finishedDeliveries(trx, cursor, limit, horizon, 'bodies');
  if (found.ids.length > 0) {
    await trx.deleteFrom('delivery_bodies').where('delivery_id', 'in', found.ids).execute();
    await trx.updateTable('deliveries').set({ body: '', body_apart: 0, body_pruned_at: now }).where('id', 'in', found.ids).execute();
  }
  return { removed: found.ids.length, cursor: found.cursor, done: found.done };
}

/** Fanned-out subscription events older than the horizon (the deliveries they made keep their own record). */
export async function subscriptionEventsSlice(trx: Transaction<Database>, cursor = 0, limit: number, horizon: number): Promise<Slice> {
  const rows = await trx.selectFrom('webhook_events').select(['id', 'created_at', 'fanned_out']).where('id', '>', cursor).orderBy('id').limit(limit).execute();
  return removeScanned(trx, 'webhook_events', rows.map((r) => ({ id: r.id, at: r.created_at, removable: r.fanned_out === 1 })), cursor, limit, horizon);
}

/** An alert's checks older than the horizon (the alert's own row keeps when it last fired and how long it stays quiet). */
export async function alertChecksSlice(trx: Transaction<Database>, cursor = 0, limit: number, horizon: number): Promise<Slice> {
  const rows = await trx.selectFrom('alert_checks').select(['id', 'checked_at']).where('id', '>', cursor).orderBy('id').limit(limit).execute();
  return removeScanned(trx, 'alert_checks', rows.map((r) => ({ id: r.id, at: r.checked_at, removable: true })), cursor, limit, horizon);
}

/** Message batches that ended before the horizon (the ledger keeps who was sent what; only the request's record goes). */
export async function messageBatchesSlice(trx: Transaction<Database>, cursor = 0, limit: number, horizon: number): Promise<Slice> {
  const rows = await trx.selectFrom('message_batches').select(['id', 'created_at', 'finished_at']).where('id', '>', cursor).orderBy('id').limit(limit).execute();
  return removeScanned(trx, 'message_batches', rows.map((r) => ({ id: r.id, at: r.created_at, removable: r.finished_at !== null && r.finished_at < horizon })), cursor, limit, horizon);
}

/** Removes the `removable` rows scanned before the first at or after the horizon (ids follow time closely enough: a row the scan stops short of goes in a later pass). */
async function removeScanned(trx: Transaction<Database>, table: 'webhook_events' | 'alert_checks' | 'message_batches', rows: { id: number; at: number; removable: boolean }[], cursor: number, limit: number, horizon: number): Promise<Slice> {
  const younger = rows.findIndex((r) => r.at >= horizon);
  const scanned = younger === -1 ? rows : rows.slice(0, younger);
  const ids = scanned.filter((r) => r.removable).map((r) => r.id);
  if (ids.length > 0) await trx.deleteFrom(table).where('id', 'in', ids).execute();
  return { removed: ids.length, cursor: scanned.at(-1)?.id ?? cursor, done: younger !== -1 || rows.length < limit };
}

/** Rows of finished sync runs (finishedRuns), once their snapshot and pages are gone. */
export async function syncRunsSlice(trx: Transaction<Database>, _cursor: number | undefined, limit: number, horizon: number): Promise<Slice> {
  const rows = await finishedRuns(trx, horizon)
    .select('r.id')
    .where('r.stale', '=', sql.lit(0))
    .where(({ exists, selectFrom, not, or }) =>
      not(or([exists(selectFrom('sync_snapshots as n').select('n.run_id').whereRef('n.run_id', '=', 'r.id')), exists(selectFrom('sync_pages as p').select('p.run_id').whereRef('p.run_id', '=', 'r.id'))])),
    )
    .orderBy('r.id')
    .limit(limit)
    .execute();
  const ids = rows.map((r) => r.id);
  if (ids.length > 0) await trx.deleteFrom('sync_runs').where('id', 'in', ids).execute();
  return { removed: ids.length, cursor: 0, done: ids.length < limit };
}

/**
 * Drops up to `limit` rows of the snapshot and pages of the first run marked stale (superseded as
 * a base, or abandoned); clears the mark once nothing is left. Done when no run is marked.
 */
export async function staleRunSlice(trx: Transaction<Database>, limit: number): Promise<{ removed: number; done: boolean }> {
  const stale = await trx.selectFrom('sync_runs').select('id').where('stale', '=', sql.lit(1)).orderBy('id').limit(1).executeTakeFirst();
  if (!stale) return { removed: 0, done: true };
  let removed = 0;
  const chunks = await trx.selectFrom('sync_snapshots').select('chunk').where('run_id', '=', stale.id).orderBy('chunk').limit(limit).execute();
  if (chunks.length > 0) {
    await trx.deleteFrom('sync_snapshots').where('run_id', '=', stale.id).where('chunk', 'in', chunks.map((c) => c.chunk)).execute();
    removed += chunks.length;
  }
  for (const table of ['sync_pages', 'sync_page_ids'] as const) {
    if (removed >= limit) break;
    const pages = await trx.selectFrom(table).select('page').where('run_id', '=', stale.id).orderBy('page').limit(limit - removed).execute();
    if (pages.length === 0) continue;
    await trx.deleteFrom(table).where('run_id', '=', stale.id).where('page', 'in', pages.map((p) => p.page)).execute();
    removed += pages.length;
  }
  if (removed < limit) await trx.updateTable('sync_runs').set({ stale: 0 }).where('id', '=', stale.id).execute();
  return { removed, done: false };
}

/** Where the daily-count slices stand: a project, and within it the event name whose counts go next. */
export interface CountsCursor {
  projectId: number;
  event: string;
}

const DAY = 86_400_000;

/** Events before the horizon (the start of a UTC day), one project at a time (their index leads with the project and time). */
export async function eventsSlice(trx: Transaction<Database>, projectId: number | null | undefined, limit: number, horizon: number): Promise<Slice<number | null>> {
  const project = projectId ?? (await nextProject(trx, 0));
  if (project === null) return { removed: 0, cursor: null, done: true };
  const ids = (await trx.selectFrom('events').select('id').where('project_id', '=', project).where('time', '<', horizon).limit(limit).execute()).map((r) => r.id);
  if (ids.length > 0) await trx.deleteFrom('events').where('id', 'in', ids).execute();
  const next = ids.length === limit ? project : await nextProject(trx, project);
  return { removed: ids.length, cursor: next, done: next === null };
}

/**
 * Daily counts of days before the horizon's (whole UTC days, so a day leaves the events and the
 * counts alike), one project and event name at a time: their index leads with the name.
 */
export async function dailyCountsSlice(trx: Transaction<Database>, at: CountsCursor | null | undefined, limit: number, horizon: number): Promise<Slice<CountsCursor | null>> {
  const cursor = at ?? (await nextEvent(trx, 0, null));
  if (!cursor) return { removed: 0, cursor: null, done: true };
  const { projectId, event } = cursor;
  const horizonDay = Math.floor(horizon / DAY);
  const keys = await trx.selectFrom('event_daily_counts').select(['distinct_id', 'day']).where('project_id', '=', projectId).where('event', '=', event).where('day', '<', horizonDay).limit(limit).execute();
  for (const k of keys) {
    await trx.deleteFrom('event_daily_counts').where('project_id', '=', projectId).where('distinct_id', '=', k.distinct_id).where('event', '=', event).where('day', '=', k.day).execute();
  }
  const next = keys.length === limit ? cursor : await nextEvent(trx, projectId, event);
  return { removed: keys.length, cursor: next, done: next === null };
}

/** The first event name after `after` in a project with counts, else in the next such project. */
async function nextEvent(db: Db, projectId: number, after: string | null): Promise<CountsCursor | null> {
  for (let project: number | null = after === null ? await nextProject(db, projectId) : projectId, name = after; project !== null; project = await nextProject(db, project), name = null) {
    let q = db.selectFrom('event_daily_counts').select('event').where('project_id', '=', project);
    if (name !== null) q = q.where('event', '>', name);
    const row = await q.orderBy('event').limit(1).executeTakeFirst();
    if (row) return { projectId: project, event: row.event };
  }
  return null;
}

async function nextProject(db: Db, after: number): Promise<number | null> {
  return (await db.selectFrom('projects').select('id').where('id', '>', after).orderBy('id').limit(1).executeTakeFirst())?.id ?? null;
}

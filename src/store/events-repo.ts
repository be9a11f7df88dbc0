import type { Store } from './database.js';
import { jsonPropertyIn } from './json-sql.js';
import { readJson } from './schema.js';

export interface EventRecord {
  id: number;
  event: string;
  distinctId: string;
  time: number;
  insertId: string | null;
  properties: Record<string, unknown>;
  receivedAt: number;
}

export interface EventQuery {
  event?: string;
  distinctId?: string;
  /** Inclusive lower and exclusive upper bound, ms since epoch. */
  from?: number;
  to?: number;
  /** properties[NAME] equal to one of the JSON texts (scanned: events have no index by property). */
  equals?: Record<string, string[]>;
  /** Oldest first (the default) or newest first. */
  order?: 'asc' | 'desc';
  /** Continue past this (time, id), in the query's order. */
  after?: { time: number; id: number };
  limit: number;
}

const DAY_MS = 86_400_000;

/** A page of events in (time, id) order, or its reverse. */
export async function listEvents(store: Store, projectId: number, q: EventQuery): Promise<EventRecord[]> {
  if (q.distinctId === undefined || q.distinctId === '') return listRange(store, projectId, q);
  // There is no per-user index on events (it would halve ingestion speed). The daily counts
  // know the days a user was active; read those days' time ranges only, until the page is full.
  let days = store.db
    .selectFrom('event_daily_counts')
    .select('day')
    .distinct()
    .where('project_id', '=', projectId)
    .where('distinct_id', '=', q.distinctId);
  if (q.event !== undefined) days = days.where('event', '=', q.event);
  const desc = q.order === 'desc';
  const first = Math.max(q.from ?? -Infinity, !desc ? (q.after?.time ?? -Infinity) : -Infinity);
  const last = Math.min(q.to ?? Infinity, desc ? (q.after?.time ?? Infinity) : Infinity);
  if (first > -Infinity) days = days.where('day', '>=', Math.floor(first / DAY_MS));
  if (last < Infinity) days = days.where('day', '<=', Math.floor(last / DAY_MS));
  const out: EventRecord[] = [];
  for (const { day } of await days.orderBy('day', desc ? 'desc' : 'asc').execute()) {
    const from = Math.max(day * DAY_MS, q.from ?? -Infinity);
    const to = Math.min((day + 1) * DAY_MS, q.to ?? Infinity);
    out.push(...(await listRange(store, projectId, { ...q, from, to, limit: q.limit - out.length })));
    if (out.length >= q.limit) break;
  }
  return out;
}

async function listRange(store: Store, projectId: number, q: EventQuery): Promise<EventRecord[]> {
  let query = store.db.selectFrom('events').selectAll().where('project_id', '=', projectId);
  if (q.event !== undefined) query = query.where('event', '=', q.event);
  if (q.distinctId !== undefined) query = query.where('distinct_id', '=', q.distinctId);
  if (q.from !== undefined) query = query.where('time', '>=', q.from);
  if (q.to !== undefined) query = query.where('time', '<', q.to);
  for (const [key, values] of Object.entries(q.equals ?? {})) query = query.where(jsonPropertyIn(store.dialect, 'properties', key, values));
  const desc = q.order === 'desc';
  if (q.after) {
    const { time, id } = q.after;
    // Written so the time bound alone can drive the index range.
    query = desc
      ? query.where('time', '<=', time).where((eb) => eb.or([eb('time', '<', time), eb('id', '<', id)]))
      : query.where('time', '>=', time).where((eb) => eb.or([eb('time', '>', time), eb('id', '>', id)]));
  }
  const direction = desc ? 'desc' : 'asc';
  const rows = await query.orderBy('time', direction).orderBy('id', direction).limit(q.limit).execute();
  return rows.map((r) => ({
    id: r.id,
    event: r.event,
    distinctId: r.distinct_id,
    time: r.time,
    insertId: r.insert_id,
    properties: readJson(r.properties),
    receivedAt: r.received_at,
  }));
}

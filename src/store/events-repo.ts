import type { Store } from './database.js';
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
  /** Continue after this (time, id). */
  after?: { time: number; id: number };
  limit: number;
}

/** A page of events in (time, id) order. */
export async function listEvents(store: Store, projectId: number, q: EventQuery): Promise<EventRecord[]> {
  let query = store.db.selectFrom('events').selectAll().where('project_id', '=', projectId);
  if (q.event !== undefined) query = query.where('event', '=', q.event);
  if (q.distinctId !== undefined) query = query.where('distinct_id', '=', q.distinctId);
  if (q.from !== undefined) query = query.where('time', '>=', q.from);
  if (q.to !== undefined) query = query.where('time', '<', q.to);
  if (q.after) {
    const { time, id } = q.after;
    query = query.where((eb) => eb.or([eb('time', '>', time), eb.and([eb('time', '=', time), eb('id', '>', id)])]));
  }
  const rows = await query.orderBy('time').orderBy('id').limit(q.limit).execute();
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

import { sql } from 'kysely';
import type { Store } from './database.js';

/**
 * The dashboard's overview: what is happening now, read with bounded queries only, so it answers
 * in milliseconds however large the tables grow. Counts that could run long stop at a cap and say so.
 */

export interface OverviewCaps {
  /** Pending deliveries counted at most (beyond: "at least"). */
  pending: number;
  /** Newest events read for the per-minute series. */
  events: number;
  /** Newest deliveries read for the outcomes' series. */
  deliveries: number;
}

export const OVERVIEW_CAPS: OverviewCaps = { pending: 10_000, events: 100_000, deliveries: 20_000 };

export interface Overview {
  pending: { count: number; capped: boolean; oldestDueAt: number | null };
  /** Per-minute buckets since `since`, oldest first: events by their time, finished deliveries by outcome. */
  minutes: { at: number; events: number; succeeded: number; failed: number; cancelled: number }[];
  /** True when a series reached its cap: the earliest buckets then count fewer than happened. */
  eventsCapped: boolean;
  deliveriesCapped: boolean;
  /** Disabled (since when, why) or throttled (until when) connections. */
  connections: { id: number; name: string; state: 'throttled' | 'disabled'; reason: string | null; since: number | null; until: number | null }[];
  pausedSyncs: { id: number; cohortId: number; connectionId: number; reason: string | null }[];
  pausedSyncsCount: number;
}

type Row = Record<string, unknown>;
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

export async function readOverview(store: Store, projectId: number, since: number, now: number, caps: OverviewCaps = OVERVIEW_CAPS): Promise<Overview> {
  const { db } = store;
  const minute = 60_000;
  // A literal, not a parameter: better-sqlite3 may bind a number as REAL, making the division fractional.
  const perMinute = sql.lit(minute);
  const first = Math.floor(since / minute);
  const minutes = Array.from({ length: Math.floor(now / minute) - first + 1 }, (_, i) => ({ at: (first + i) * minute, events: 0, succeeded: 0, failed: 0, cancelled: 0 }));
  const bucket = (at: number) => minutes[Math.floor(at / minute) - first];

  // Events by minute of their time, from the (project_id, time) index: the newest `caps.events` at most.
  const eventRows = await sql<Row>`select time / ${perMinute} as m, count(*) as n from (
      select time from events where project_id = ${projectId} and time >= ${since} and time <= ${now} order by time desc limit ${caps.events}
    ) recent group by time / ${perMinute}`.execute(db);
  let eventsSeen = 0;
  for (const r of eventRows.rows) {
    const b = minutes[Number(r.m) - first];
    eventsSeen += Number(r.n);
    if (b) b.events += Number(r.n);
  }

  // Finished deliveries by the minute they finished: read from the newest deliveries (by id, the project's index).
  const deliveryRows = await sql<Row>`select completed_at / ${perMinute} as m, state, count(*) as n from (
      select completed_at, state from deliveries where project_id = ${projectId} order by id desc limit ${caps.deliveries}
    ) recent where completed_at >= ${since} group by completed_at / ${perMinute}, state`.execute(db);
  let deliveriesSeen = 0;
  for (const r of deliveryRows.rows) {
    const b = minutes[Number(r.m) - first];
    deliveriesSeen += Number(r.n);
    if (b && (r.state === 'succeeded' || r.state === 'failed' || r.state === 'cancelled')) b[r.state] += Number(r.n);
  }

  const connections = await db
    .selectFrom('connections')
    .select(['id', 'name', 'disabled_at', 'disabled_reason', 'throttled_until'])
    .where('project_id', '=', projectId)
    .where('deleted_at', 'is', null)
    .orderBy('id')
    .execute();

  const pausedSyncs = await db
    .selectFrom('cohort_syncs')
    .select(['id', 'cohort_id', 'connection_id', 'state_reason'])
    .where('project_id', '=', projectId)
    .where('state', '=', 'paused')
    .orderBy('id')
    .limit(51)
    .execute();
  const pausedSyncsCount =
    pausedSyncs.length <= 50
      ? pausedSyncs.length
      : Number((await db.selectFrom('cohort_syncs').select((eb) => eb.fn.countAll().as('n')).where('project_id', '=', projectId).where('state', '=', 'paused').executeTakeFirstOrThrow()).n);

  return {
    pending: await pendingDeliveries(store, projectId, connections.map((c) => c.id), caps.pending),
    minutes,
    eventsCapped: eventsSeen >= caps.events,
    deliveriesCapped: deliveriesSeen >= caps.deliveries,
    connections: connections.flatMap((c): Overview['connections'] => {
      if (c.disabled_at !== null) return [{ id: c.id, name: c.name, state: 'disabled', reason: c.disabled_reason, since: num(c.disabled_at), until: null }];
      if (c.throttled_until !== null && Number(c.throttled_until) > now) return [{ id: c.id, name: c.name, state: 'throttled', reason: null, since: null, until: num(c.throttled_until) }];
      return [];
    }),
    pausedSyncs: pausedSyncs.slice(0, 50).map((s) => ({ id: s.id, cohortId: s.cohort_id, connectionId: s.connection_id, reason: s.state_reason })),
    pausedSyncsCount,
  };
}

/**
 * Pending deliveries of the project (counted up to `cap`) and the earliest due time among them,
 * each through the queue's own index: per webhook lane a seek to its earliest entry, and the
 * channel lanes (no connection) read apart.
 */
async function pendingDeliveries(store: Store, projectId: number, connectionIds: number[], cap: number): Promise<Overview['pending']> {
  const { db } = store;
  let count: number;
  const due: (number | null)[] = [];
  if (store.dialect === 'postgres') {
    const counted = await sql<Row>`select count(*) as n from (
        select 1 from delivery_queue q join deliveries d on d.id = q.delivery_id where d.project_id = ${projectId} limit ${cap + 1}) pending`.execute(db);
    count = Number(counted.rows[0]!.n);
    for (const id of connectionIds) due.push(num((await sql<Row>`select min(run_at) as at from delivery_queue where connection_id = ${id}`.execute(db)).rows[0]?.at));
    due.push(num((await sql<Row>`select min(q.run_at) as at from delivery_queue q join deliveries d on d.id = q.delivery_id where q.connection_id is null and d.project_id = ${projectId}`.execute(db)).rows[0]?.at));
  } else {
    const counted = await sql<Row>`select count(*) as n from (
        select 1 from deliveries indexed by deliveries_due where state = 'pending' and project_id = ${projectId} limit ${cap + 1}) pending`.execute(db);
    count = Number(counted.rows[0]!.n);
    for (const id of connectionIds) due.push(num((await sql<Row>`select min(next_attempt_at) as at from deliveries indexed by deliveries_due where state = 'pending' and connection_id = ${id}`.execute(db)).rows[0]?.at));
    due.push(num((await sql<Row>`select min(next_attempt_at) as at from deliveries indexed by deliveries_due where state = 'pending' and connection_id is null and project_id = ${projectId}`.execute(db)).rows[0]?.at));
  }
  const known = due.filter((d): d is number => d !== null);
  return { count: Math.min(count, cap), capped: count > cap, oldestDueAt: known.length ? Math.min(...known) : null };
}

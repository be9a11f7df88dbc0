import { PostgresAdapter, sql, type Kysely, type Transaction } from 'kysely';
import type { Store } from './database.js';
import { PENDING } from './leases.js';
import type { Database, DeliveriesTable } from './schema.js';

/**
 * The outbox's rows outside a lease: writing deliveries, finding where work is due, and the two
 * state changes made without a lease: requeueing (a retry by hand, a resumed sync page) and
 * cancelling what waits. Neither touches a delivery under a live lease unless it says so.
 * Claims, renewals and outcomes are in leases.ts.
 *
 * On PostgreSQL a pending delivery also has a row in delivery_queue (leases.ts says why): every
 * statement here that makes a delivery pending, or ends it, writes its queue row in the same
 * statement, so the two never disagree, even across a crash outside any transaction.
 */

type Db = Kysely<Database> | Transaction<Database>;

/** A queue row no live lease holds (delivery_queue as q). */
const queueUnleased = (now: number) => sql<boolean>`(q.leased_until is null or q.leased_until <= ${now})`;

/** Callers hand in a database or a transaction, not the store: its dialect is the adapter's. */
const onPostgres = (db: Db) => db.getExecutor().adapter instanceof PostgresAdapter;

/** The channel PostgreSQL processes LISTEN on: its payload is the lane with work due (lane-notices.ts). */
export const DELIVERY_CHANNEL = 'cohortcast_deliveries';

/** A lane as notifications name it: a connection's id, or `channel:NAME` (the dispatcher's lane keys). */
const laneName = (r: { connection_id: number | null; channel: string }) => (r.connection_id === null ? `channel:${r.channel}` : String(r.connection_id));

/**
 * Tells listening processes (PostgreSQL) that these lanes have work due now; delivered when the
 * transaction commits, once per lane and transaction (PostgreSQL folds identical notifications).
 */
async function notifyLanes(db: Db, rows: { connection_id: number | null; channel: string; next_attempt_at: number }[], now: number): Promise<void> {
  const lanes = [...new Set(rows.filter((r) => r.next_attempt_at <= now).map(laneName))];
  if (lanes.length === 0) return;
  await sql`select pg_notify(${DELIVERY_CHANNEL}, lane) from unnest(${lanes}::text[]) as lane`.execute(db);
}

/**
 * A body longer than this is stored apart, in delivery_bodies: SQLite rewrites a whole row on
 * every update, and a delivery is updated at least twice (lease, outcome), which for a 125 KB
 * cohort-sync page cost more than sending it.
 */
const BODY_APART_CHARS = 8192;

export interface NewDeliveryRow {
  projectId: number;
  channel: string;
  connectionId: number | null;
  webhookId: string;
  ownerKind: string;
  ownerId: string;
  eventId?: string | null;
  policy: string;
  contentType: string;
  body: string;
  headers: Record<string, string>;
  notBefore: number;
}

/** Inserts deliveries; pass the producer's transaction so they commit with its state change. */
export async function insertDeliveries(db: Db, rows: NewDeliveryRow[], now: number): Promise<{ id: number; webhook_id: string }[]> {
  if (rows.length === 0) return [];
  const values = rows.map((r) => ({
    project_id: r.projectId,
    channel: r.channel,
    connection_id: r.connectionId,
    webhook_id: r.webhookId,
    owner_kind: r.ownerKind,
    owner_id: r.ownerId,
    event_id: r.eventId ?? null,
    policy: r.policy,
    content_type: r.contentType,
    body: r.body.length > BODY_APART_CHARS ? '' : r.body,
    body_apart: r.body.length > BODY_APART_CHARS ? 1 : 0,
    headers: JSON.stringify(r.headers),
    state: 'pending' as const,
    attempts: 0,
    round_attempts: 0,
    next_attempt_at: r.notBefore,
    created_at: now,
    updated_at: now,
  }));
  let inserted: { id: number; webhook_id: string }[];
  if (onPostgres(db)) {
    // The queue rows in the same statement.
    inserted = await db
      .with('made', (qb) => qb.insertInto('deliveries').values(values).returning(['id', 'webhook_id', 'connection_id', 'channel', 'next_attempt_at']))
      .with('queued', (qb) =>
        qb
          .insertInto('delivery_queue')
          .columns(['delivery_id', 'connection_id', 'channel', 'run_at'])
          .expression((eb) => eb.selectFrom('made').select(['id', 'connection_id', 'channel', 'next_attempt_at'])),
      )
      .selectFrom('made')
      .select(['id', 'webhook_id'])
      .execute();
    await notifyLanes(db, values, now);
  } else {
    inserted = await db.insertInto('deliveries').values(values).returning(['id', 'webhook_id']).execute();
  }
  const apart = inserted.flatMap((d, i) => (rows[i]!.body.length > BODY_APART_CHARS ? [{ delivery_id: d.id, body: rows[i]!.body }] : []));
  for (let i = 0; i < apart.length; i += 16) await db.insertInto('delivery_bodies').values(apart.slice(i, i + 16)).execute();
  return inserted;
}

/** A delivery's body, wherever it is stored. */
export async function deliveryBody(db: Db, row: { id: number; body: string; body_apart: number }): Promise<string> {
  if (row.body_apart !== 1) return row.body;
  const apart = await db.selectFrom('delivery_bodies').select('body').where('delivery_id', '=', row.id).executeTakeFirst();
  return apart?.body ?? '';
}

/**
 * Destinations that have work due now and may be sent to (enabled, not throttled): one indexed
 * probe per destination, whatever the size of the backlog.
 */
export async function dueConnections(store: Store, now: number): Promise<number[]> {
  const usable = store.db
    .selectFrom('connections as c')
    .select('c.id')
    .where('c.disabled_at', 'is', null)
    .where('c.deleted_at', 'is', null)
    .where((eb) => eb.or([eb('c.throttled_until', 'is', null), eb('c.throttled_until', '<=', now)]));
  if (store.dialect === 'postgres') {
    // A lateral LIMIT 1 in the index's order, not EXISTS: PostgreSQL made EXISTS a semi-join over a
    // sequential scan of the whole queue (30 ms at a backlog of 50,000, at every poll), where this
    // is one index probe per connection.
    const rows = await usable
      .innerJoinLateral(
        (eb) =>
          eb.selectFrom('delivery_queue as q').select('q.delivery_id').whereRef('q.connection_id', '=', 'c.id').where('q.run_at', '<=', now).where(queueUnleased(now)).orderBy('q.run_at').limit(1).as('due'),
        (join) => join.onTrue(),
      )
      .execute();
    return rows.map((r) => r.id);
  }
  const rows = await usable
    .where(({ exists, selectFrom }) =>
      exists(selectFrom('deliveries as d').select('d.id').whereRef('d.connection_id', '=', 'c.id').where('d.state', '=', PENDING).where('d.next_attempt_at', '<=', now).limit(1)),
    )
    .execute();
  return rows.map((r) => r.id);
}

/** Whether deliveries of a channel without connections (e-mail) are due now. */
export async function channelWorkDue(store: Store, channel: string, now: number): Promise<boolean> {
  if (store.dialect === 'postgres') {
    const row = await store.db.selectFrom('delivery_queue as q').select('q.delivery_id').where('q.connection_id', 'is', null).where('q.run_at', '<=', now).where(queueUnleased(now)).where('q.channel', '=', channel).orderBy('q.run_at').limit(1).executeTakeFirst();
    return row !== undefined;
  }
  const row = await store.db
    .selectFrom('deliveries')
    .select('id')
    .where('connection_id', 'is', null)
    .where('state', '=', PENDING)
    .where('next_attempt_at', '<=', now)
    .where('channel', '=', channel)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

export interface QueueStats {
  pending: number;
  oldestDueAt: number | null;
}

export async function queueStats(store: Store, now: number): Promise<QueueStats> {
  const row =
    store.dialect === 'postgres'
      ? await store.db
          .selectFrom('delivery_queue')
          // A leased row is due when its lease ends, as deliveries.next_attempt_at says.
          .select((eb) => [eb.fn.countAll<number>().as('pending'), eb.fn.min(sql<number>`greatest(run_at, coalesce(leased_until, 0))`).as('oldest')])
          .executeTakeFirst()
      : await store.db
          .selectFrom('deliveries')
          .select((eb) => [eb.fn.countAll<number>().as('pending'), eb.fn.min('next_attempt_at').as('oldest')])
          .where('state', '=', PENDING)
          .executeTakeFirst();
  const oldest = row?.oldest == null ? null : Number(row.oldest);
  return { pending: Number(row?.pending ?? 0), oldestDueAt: oldest !== null && oldest <= now ? oldest : null };
}

/** Which deliveries a requeue or a cancel takes. */
export type DeliverySelection =
  | { ids: number[] }
  | { project: number; id: number }
  | { connectionId: number; state?: DeliveriesTable['state']; completedFrom?: number; completedTo?: number };

function selected(db: Db, selection: DeliverySelection) {
  let q = db.updateTable('deliveries');
  // An empty list selects nothing (callers skip the statement where it matters).
  if ('ids' in selection) return q.where('id', 'in', selection.ids.length > 0 ? selection.ids : [-1]);
  if ('project' in selection) return q.where('project_id', '=', selection.project).where('id', '=', selection.id);
  q = q.where('connection_id', '=', selection.connectionId);
  if (selection.state !== undefined) q = q.where('state', '=', selection.state === 'pending' ? PENDING : selection.state);
  if (selection.completedFrom !== undefined) q = q.where('completed_at', '>=', selection.completedFrom);
  if (selection.completedTo !== undefined) q = q.where('completed_at', '<', selection.completedTo);
  return q;
}

/**
 * Puts deliveries back at the start of their retry schedule, due at `now`, keeping their
 * webhook-id and attempt log. One under a live lease is left alone (its worker is sending it), and
 * so is one whose body retention removed (there is nothing left to send).
 * `except` keeps deliveries in those states as they are. Answers the ids requeued.
 */
export async function requeueDeliveries(db: Db, selection: DeliverySelection, now: number, except: DeliveriesTable['state'][] = []): Promise<number[]> {
  let q = selected(db, selection)
    .set({ state: 'pending', outcome: null, round_attempts: 0, next_attempt_at: now, lease_owner: null, lease_token: null, lease_expires_at: null, completed_at: null, updated_at: now })
    .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<=', now)]))
    .where('body_pruned_at', 'is', null);
  if (except.length > 0) q = q.where('state', 'not in', except);
  if (!onPostgres(db)) return (await q.returning('id').execute()).map((r) => r.id);
  const rows = await db
    .with('requeued', () => q.returning(['id', 'connection_id', 'channel', 'next_attempt_at']))
    .with('queued', (qb) =>
      qb
        .insertInto('delivery_queue')
        .columns(['delivery_id', 'connection_id', 'channel', 'run_at'])
        .expression((eb) => eb.selectFrom('requeued').select(['id', 'connection_id', 'channel', 'next_attempt_at']))
        .onConflict((oc) => oc.column('delivery_id').doUpdateSet((eb) => ({ run_at: eb.ref('excluded.run_at'), leased_until: null }))),
    )
    .selectFrom('requeued')
    .select(['id', 'connection_id', 'channel', 'next_attempt_at'])
    .execute();
  await notifyLanes(db, rows, now);
  return rows.map((r) => r.id);
}

/**
 * Cancels pending deliveries with `reason`. Those under a live lease are cancelled too only with
 * `evenLeased` (their attempt is then logged, but cannot change the state back). Answers the ids.
 */
export async function cancelDeliveries(db: Db, selection: DeliverySelection, reason: string, now: number, opts: { evenLeased?: boolean } = {}): Promise<number[]> {
  let q = selected(db, selection)
    .set({ state: 'cancelled', outcome: 'cancelled', last_error: reason, completed_at: now, updated_at: now })
    .where('state', '=', PENDING);
  if (!opts.evenLeased) q = q.where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_expires_at', '<=', now)]));
  if (!onPostgres(db)) return (await q.returning('id').execute()).map((r) => r.id);
  const rows = await db
    .with('cancelled', () => q.returning('id'))
    .with('dequeued', (qb) => qb.deleteFrom('delivery_queue').where('delivery_id', 'in', (eb) => eb.selectFrom('cancelled').select('id')))
    .selectFrom('cancelled')
    .select('id')
    .execute();
  return rows.map((r) => r.id);
}

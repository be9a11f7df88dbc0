import { sql, type Kysely, type Selectable, type Transaction, type Updateable } from 'kysely';
import type { Store } from './database.js';
import type { Database, DeliveriesTable, DeliveryAttemptsTable } from './schema.js';
import { sqliteOutbox } from './sqlite-outbox.js';

export type DeliveryRow = Selectable<DeliveriesTable>;

/** What sending and recording a delivery need: claims return only these (each column costs), and the body. */
const CLAIMED_COLUMNS = ['id', 'project_id', 'connection_id', 'webhook_id', 'owner_kind', 'owner_id', 'policy', 'content_type', 'headers', 'attempts', 'round_attempts', 'next_attempt_at'] as const;
export type ClaimedDelivery = Pick<DeliveryRow, (typeof CLAIMED_COLUMNS)[number] | 'body'>;

/**
 * A body longer than this is stored apart, in delivery_bodies: SQLite rewrites a whole row on
 * every update, and a delivery is updated at least twice (lease, outcome), which for a 125 KB
 * cohort-sync page cost more than sending it.
 */
const BODY_APART_CHARS = 8192;
const BODY = `case when body_apart = 1 then (select b.body from delivery_bodies as b where b.delivery_id = deliveries.id) else body end`;
const CLAIMED_SQL = [...CLAIMED_COLUMNS, `${BODY} as body`];
const claimedBody = sql.raw<string>(BODY).as('body');

/**
 * 'pending' written into the SQL, not bound: SQLite uses a partial index (deliveries_due, WHERE
 * state = 'pending') only when the query's own condition is that literal.
 */
export const PENDING = sql.lit('pending' as const);
type Db = Kysely<Database> | Transaction<Database>;

export interface NewDeliveryRow {
  projectId: number;
  connectionId: number;
  webhookId: string;
  ownerKind: string;
  ownerId: string;
  policy: string;
  contentType: string;
  body: string;
  headers: Record<string, string>;
  notBefore: number;
}

/** Inserts deliveries; pass the producer's transaction so they commit with its state change. */
export async function insertDeliveries(db: Db, rows: NewDeliveryRow[], now: number): Promise<{ id: number; webhook_id: string }[]> {
  if (rows.length === 0) return [];
  const inserted = await db
    .insertInto('deliveries')
    .values(
      rows.map((r) => ({
        project_id: r.projectId,
        connection_id: r.connectionId,
        webhook_id: r.webhookId,
        owner_kind: r.ownerKind,
        owner_id: r.ownerId,
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
      })),
    )
    .returning(['id', 'webhook_id'])
    .execute();
  const apart = inserted.flatMap((d, i) => (rows[i]!.body.length > BODY_APART_CHARS ? [{ delivery_id: d.id, body: rows[i]!.body }] : []));
  for (let i = 0; i < apart.length; i += 16) await db.insertInto('delivery_bodies').values(apart.slice(i, i + 16)).execute();
  return inserted;
}

/** A delivery's body, wherever it is stored. */
export async function deliveryBody(db: Db, row: Pick<DeliveryRow, 'id' | 'body' | 'body_apart'>): Promise<string> {
  if (row.body_apart !== 1) return row.body;
  const apart = await db.selectFrom('delivery_bodies').select('body').where('delivery_id', '=', row.id).executeTakeFirst();
  return apart?.body ?? '';
}

/**
 * Destinations that have work due now and may be sent to (enabled, not throttled): one indexed
 * probe per destination, whatever the size of the backlog.
 */
export async function dueConnections(store: Store, now: number): Promise<number[]> {
  const rows = await store.db
    .selectFrom('connections as c')
    .select('c.id')
    .where('c.disabled_at', 'is', null)
    .where('c.deleted_at', 'is', null)
    .where((eb) => eb.or([eb('c.throttled_until', 'is', null), eb('c.throttled_until', '<=', now)]))
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('deliveries as d')
          .select('d.id')
          .whereRef('d.connection_id', '=', 'c.id')
          .where('d.state', '=', PENDING)
          .where('d.next_attempt_at', '<=', now)
          .limit(1),
      ),
    )
    .execute();
  return rows.map((r) => r.id);
}

/**
 * Leases up to `limit` due deliveries of one destination to `worker`. The lease's expiry is also
 * the row's next_attempt_at, so a leased row drops out of the due range of the claim index (claims
 * never wade through work in flight) and comes back by itself if its worker dies. On PostgreSQL
 * rows another worker is claiming are skipped, not waited for; on SQLite the single writer makes
 * the update atomic.
 */
export async function claimDeliveries(store: Store, connectionId: number, limit: number, worker: string, now: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  if (store.dialect === 'sqlite') {
    const { raw } = store;
    return store.db.connection().execute(async () => sqliteOutbox(raw, CLAIMED_SQL).claim(connectionId, limit, worker, now, leaseMs));
  }
  const due = store.db
    .selectFrom('deliveries')
    .select('id')
    .where('connection_id', '=', connectionId)
    .where('state', '=', PENDING)
    .where('next_attempt_at', '<=', now)
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(limit)
    .$if(store.dialect === 'postgres', (q) => q.forUpdate().skipLocked());
  return store.db
    .updateTable('deliveries')
    .set({ lease_owner: worker, lease_expires_at: now + leaseMs, next_attempt_at: now + leaseMs, updated_at: now })
    .where('id', 'in', due)
    .returning([...CLAIMED_COLUMNS, claimedBody])
    .execute();
}

/** Gives back leases this worker still holds (on shutdown), so others need not wait for them to expire. */
export async function releaseLeases(store: Store, worker: string, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await store.db
    .updateTable('deliveries')
    .set({ lease_owner: null, lease_expires_at: null, next_attempt_at: Date.now() })
    .where('id', 'in', ids)
    .where('lease_owner', '=', worker)
    .where('state', '=', PENDING)
    .execute();
}

export interface QueueStats {
  pending: number;
  oldestDueAt: number | null;
}

export async function queueStats(store: Store, now: number): Promise<QueueStats> {
  const row = await store.db
    .selectFrom('deliveries')
    .select((eb) => [eb.fn.countAll<number>().as('pending'), eb.fn.min('next_attempt_at').as('oldest')])
    .where('state', '=', PENDING)
    .executeTakeFirst();
  const oldest = row?.oldest == null ? null : Number(row.oldest);
  return { pending: Number(row?.pending ?? 0), oldestDueAt: oldest !== null && oldest <= now ? oldest : null };
}

/** Leases one delivery by id, if nobody holds it: for sending it now (connection tests). */
export async function claimDelivery(store: Store, id: number, worker: string, now: number, leaseMs: number): Promise<ClaimedDelivery | undefined> {
  return store.db
    .updateTable('deliveries')
    .set({ lease_owner: worker, lease_expires_at: now + leaseMs, next_attempt_at: now + leaseMs, updated_at: now })
    .where('id', '=', id)
    .where('state', '=', PENDING)
    .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<=', now)]))
    .returning([...CLAIMED_COLUMNS, claimedBody])
    .executeTakeFirst();
}

/** A delivery's state after one attempt. */
export interface AttemptOutcomeRow {
  id: number;
  attempts: number;
  roundAttempts: number;
  startedAt: number;
  state: DeliveriesTable['state'];
  outcome: string | null;
  nextAttemptAt: number;
  lastStatus: number | null;
  lastError: string | null;
  completedAt: number | null;
}

/** One row of the attempt log; the reply's headers already as JSON text. */
export type AttemptRow = Omit<Selectable<DeliveryAttemptsTable>, 'id' | 'response_headers'> & { response_headers: string | null };

/**
 * Records a batch of attempts inside the caller's transaction `trx`: the attempt log rows, and each
 * delivery's new state, written only while `worker` still holds its lease. Answers the ids changed.
 */
export async function recordAttempts(store: Store, trx: Transaction<Database>, worker: string, attempts: AttemptRow[], outcomes: AttemptOutcomeRow[], now: number): Promise<Set<number>> {
  // The transaction holds SQLite's one connection: the prepared statements run inside it.
  if (store.dialect === 'sqlite') return sqliteOutbox(store.raw, CLAIMED_SQL).record(worker, attempts, outcomes, now);
  if (attempts.length > 0) await trx.insertInto('delivery_attempts').values(attempts).execute();
  if (outcomes.length === 0) return new Set();
  // One statement for the batch: a CTE of VALUES.
  const int = (v: number | null) => sql`cast(${v} as bigint)`;
  const text = (v: string | null) => sql`cast(${v} as text)`;
  const values = sql.join(
    outcomes.map(
      (r) =>
        sql`(${sql.join([int(r.id), int(r.attempts), int(r.roundAttempts), int(r.startedAt), text(r.state), text(r.outcome), int(r.nextAttemptAt), int(r.lastStatus), text(r.lastError), int(r.completedAt)])})`,
    ),
  );
  const result = await sql<{ id: number }>`
    with v (id, attempts, round_attempts, started_at, state, outcome, next_attempt_at, last_status, last_error, completed_at) as (values ${values})
    update deliveries set
      attempts = v.attempts, round_attempts = v.round_attempts,
      first_attempt_at = coalesce(deliveries.first_attempt_at, v.started_at),
      state = v.state, outcome = v.outcome, next_attempt_at = v.next_attempt_at,
      lease_owner = null, lease_expires_at = null,
      last_status = v.last_status, last_error = v.last_error, updated_at = ${now}, completed_at = v.completed_at
    from v
    where deliveries.id = v.id and deliveries.lease_owner = ${worker} and deliveries.state = ${PENDING}
    returning deliveries.id`.execute(trx);
  return new Set(result.rows.map((r) => Number(r.id)));
}

/**
 * Extends a lease this worker still holds from the claim that set it to `heldUntil` (a lease that
 * ran out and was claimed again, even by this worker, has another expiry and is left alone).
 * Answers the new expiry, or undefined when the lease is no longer that one.
 */
export async function renewLease(store: Store, worker: string, id: number, heldUntil: number, now: number, leaseMs: number): Promise<number | undefined> {
  const until = now + leaseMs;
  const res = await store.db
    .updateTable('deliveries')
    .set({ lease_expires_at: until, next_attempt_at: until })
    .where('id', '=', id)
    .where('lease_owner', '=', worker)
    .where('state', '=', PENDING)
    .where('lease_expires_at', '=', heldUntil)
    .where('lease_expires_at', '>', now)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1 ? until : undefined;
}

/** Ends a delivery this worker holds without sending it. */
export async function cancelDelivery(store: Store, worker: string, id: number, reason: string): Promise<void> {
  const now = Date.now();
  await store.db
    .updateTable('deliveries')
    .set({ state: 'cancelled', outcome: 'cancelled', last_error: reason, lease_owner: null, lease_expires_at: null, completed_at: now, updated_at: now })
    .where('id', '=', id)
    .where('lease_owner', '=', worker)
    .where('state', '=', PENDING)
    .execute();
}

/** A delivery back at the start of its retry schedule, keeping its webhook-id and attempt log. */
export const requeue = (now: number): Updateable<DeliveriesTable> => ({
  state: 'pending',
  outcome: null,
  round_attempts: 0,
  next_attempt_at: now,
  lease_owner: null,
  lease_expires_at: null,
  completed_at: null,
  updated_at: now,
});

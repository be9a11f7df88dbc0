import type BetterSqlite3 from 'better-sqlite3';
import { sql, type Selectable, type Transaction } from 'kysely';
import type { Store } from './database.js';
import type { Database, DeliveriesTable, DeliveryAttemptsTable, SchedulesTable } from './schema.js';
import { prepared as named } from './prepared-statements.js';

/**
 * Every statement that takes, extends, checks or gives back a lease, for both kinds of leased work:
 * deliveries (the outbox) and schedules. A claim stamps the rows it takes with a token of its own;
 * renewing, recording an outcome, cancelling and giving back all require that token. A lease that
 * ran out and was claimed again, even by the same worker, has another token, so whatever the old
 * claim still does (a hung request answering late) changes nothing.
 *
 * A leased row's due time (deliveries.next_attempt_at) moves to the lease's expiry, so claims never
 * wade through work in flight and a dead worker's rows come due again by themselves.
 *
 * On PostgreSQL claims scan delivery_queue (one narrow row per pending delivery: its lane, due time
 * and lease's end), so deliveries carries no index on what a claim or an outcome changes and its
 * updates stay HOT. A claim sets the queue row's leased_until, which no index holds either (a HOT
 * update): claims pass over the entries of rows in flight rather than moving them in the index.
 * Every statement here that changes a pending delivery changes its queue row in the same
 * statement, locking the queue row first, as a claim does.
 */

type Trx = Transaction<Database>;
export type DeliveryRow = Selectable<DeliveriesTable>;
export type ScheduleRow = Selectable<SchedulesTable>;

let claims = 0;
/** A token no other claim has: the worker's name (host, pid, random part) and a counter. */
export const newLeaseToken = (worker: string): string => `${worker}#${++claims}`;

/** 'pending' written into the SQL, not bound: SQLite uses the partial index deliveries_due only for that literal. */
export const PENDING = sql.lit('pending' as const);

// ----- deliveries -----

/** What sending and recording a delivery need: claims return only these (each column costs), and the body. */
const CLAIMED_COLUMNS = ['id', 'project_id', 'channel', 'connection_id', 'webhook_id', 'owner_kind', 'owner_id', 'policy', 'content_type', 'headers', 'attempts', 'round_attempts', 'next_attempt_at', 'lease_token'] as const;
export type ClaimedDelivery = Pick<DeliveryRow, (typeof CLAIMED_COLUMNS)[number] | 'body'> & { lease_token: string };
/** A large body lives in delivery_bodies (outbox-repo.ts): read through this expression. */
const BODY = `case when body_apart = 1 then (select b.body from delivery_bodies as b where b.delivery_id = deliveries.id) else body end`;
const PG_RETURNING = sql.raw(`${CLAIMED_COLUMNS.map((c) => `deliveries.${c}`).join(', ')}, ${BODY} as body`);

/** Whose deliveries a claim takes: one connection's, or those of a channel with no connections (e-mail). */
export type Lane = { connectionId: number } | { channel: string };

/**
 * Leases up to `limit` due deliveries of one lane, oldest due first. On PostgreSQL rows another
 * worker is claiming are skipped, not waited for; on SQLite the single writer makes it atomic.
 */
export async function claimDeliveries(store: Store, lane: Lane, limit: number, worker: string, now: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  const token = newLeaseToken(worker);
  if (store.dialect === 'sqlite') {
    const { raw } = store;
    return store.db.connection().execute(async () => sqliteStatements(raw).claim(lane, limit, worker, token, now, leaseMs));
  }
  const until = now + leaseMs;
  const laneIs = 'connectionId' in lane ? sql`q.connection_id = ${lane.connectionId}` : sql`q.connection_id is null and q.channel = ${lane.channel}`;
  const { rows } = await sql<ClaimedDelivery>`${named('connectionId' in lane ? 'claim_connection' : 'claim_channel')}
    with due as (
      select q.delivery_id from delivery_queue as q
      where ${laneIs} and q.run_at <= ${now} and (q.leased_until is null or q.leased_until <= ${now})
      order by q.run_at, q.delivery_id limit ${limit}
      for update skip locked),
    moved as (update delivery_queue as q set leased_until = ${until} from due where q.delivery_id = due.delivery_id returning q.delivery_id)
    update deliveries set lease_owner = ${worker}, lease_token = ${token}, lease_expires_at = ${until}, next_attempt_at = ${until}, updated_at = ${now}
    from moved where deliveries.id = moved.delivery_id and deliveries.state = ${PENDING}
    returning ${PG_RETURNING}`.execute(store.db);
  return rows;
}

/** Leases one delivery by id if it is pending and nobody holds it: for sending it at once (connection tests). */
export async function claimDelivery(store: Store, id: number, worker: string, now: number, leaseMs: number): Promise<ClaimedDelivery | undefined> {
  const until = now + leaseMs;
  const lease = { lease_owner: worker, lease_token: newLeaseToken(worker), lease_expires_at: until, next_attempt_at: until, updated_at: now };
  if (store.dialect === 'sqlite') {
    const row = await store.db
      .updateTable('deliveries')
      .set(lease)
      .where('id', '=', id)
      .where('state', '=', PENDING)
      .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<=', now)]))
      .returning([...CLAIMED_COLUMNS, sql.raw<string>(BODY).as('body')])
      .executeTakeFirst();
    return row as ClaimedDelivery | undefined;
  }
  const { rows } = await sql<ClaimedDelivery>`
    with held as (select delivery_id from delivery_queue where delivery_id = ${id} for update),
    taken as (
      update deliveries set lease_owner = ${lease.lease_owner}, lease_token = ${lease.lease_token}, lease_expires_at = ${until}, next_attempt_at = ${until}, updated_at = ${now}
      from held where deliveries.id = held.delivery_id and deliveries.state = ${PENDING}
        and (deliveries.lease_expires_at is null or deliveries.lease_expires_at <= ${now})
      returning ${PG_RETURNING}),
    moved as (update delivery_queue as q set leased_until = ${until} from taken where q.delivery_id = taken.id)
    select * from taken`.execute(store.db);
  return rows[0];
}

/** Extends a lease its claim still holds; answers the new expiry, or undefined when the lease is gone. */
export async function renewDeliveryLease(store: Store, id: number, token: string, now: number, leaseMs: number): Promise<number | undefined> {
  const until = now + leaseMs;
  if (store.dialect === 'postgres') {
    const { rows } = await sql<{ id: number }>`
      with held as (select delivery_id from delivery_queue where delivery_id = ${id} for update),
      renewed as (
        update deliveries set lease_expires_at = ${until}, next_attempt_at = ${until}
        from held where deliveries.id = held.delivery_id and deliveries.lease_token = ${token} and deliveries.state = ${PENDING} and deliveries.lease_expires_at > ${now}
        returning deliveries.id),
      moved as (update delivery_queue as q set leased_until = ${until} from renewed where q.delivery_id = renewed.id)
      select id from renewed`.execute(store.db);
    return rows.length === 1 ? until : undefined;
  }
  const res = await store.db
    .updateTable('deliveries')
    .set({ lease_expires_at: until, next_attempt_at: until })
    .where('id', '=', id)
    .where('lease_token', '=', token)
    .where('state', '=', PENDING)
    .where('lease_expires_at', '>', now)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1 ? until : undefined;
}

/** Gives back leases (a worker stopping, or work it will not send): due again at once. */
export async function releaseDeliveryLeases(store: Store, held: { id: number; token: string }[], now: number): Promise<void> {
  if (held.length === 0) return;
  const ids = held.map((h) => h.id);
  const tokens = [...new Set(held.map((h) => h.token))];
  if (store.dialect === 'postgres') {
    await sql`
      with held as (select delivery_id from delivery_queue where delivery_id = any(${ids}::bigint[]) order by delivery_id for update),
      released as (
        update deliveries set lease_owner = null, lease_token = null, lease_expires_at = null, next_attempt_at = ${now}
        from held where deliveries.id = held.delivery_id and deliveries.lease_token = any(${tokens}::text[]) and deliveries.state = ${PENDING}
        returning deliveries.id)
      update delivery_queue as q set run_at = ${now}, leased_until = null from released where q.delivery_id = released.id`.execute(store.db);
    return;
  }
  await store.db
    .updateTable('deliveries')
    .set({ lease_owner: null, lease_token: null, lease_expires_at: null, next_attempt_at: now })
    .where('id', 'in', ids)
    .where('lease_token', 'in', tokens)
    .where('state', '=', PENDING)
    .execute();
}

/** Ends a delivery its claim holds, without sending it. */
export async function cancelHeldDelivery(store: Store, id: number, token: string, reason: string, now: number): Promise<void> {
  if (store.dialect === 'postgres') {
    await sql`
      with held as (select delivery_id from delivery_queue where delivery_id = ${id} for update),
      cancelled as (
        update deliveries set state = 'cancelled', outcome = 'cancelled', last_error = ${reason}, lease_owner = null, lease_token = null, lease_expires_at = null, completed_at = ${now}, updated_at = ${now}
        from held where deliveries.id = held.delivery_id and deliveries.lease_token = ${token} and deliveries.state = ${PENDING}
        returning deliveries.id)
      delete from delivery_queue as q using cancelled where q.delivery_id = cancelled.id`.execute(store.db);
    return;
  }
  await store.db
    .updateTable('deliveries')
    .set({ state: 'cancelled', outcome: 'cancelled', last_error: reason, lease_owner: null, lease_token: null, lease_expires_at: null, completed_at: now, updated_at: now })
    .where('id', '=', id)
    .where('lease_token', '=', token)
    .where('state', '=', PENDING)
    .execute();
}

/** A delivery's state after one attempt, written only under the claim that made the attempt. */
export interface AttemptOutcomeRow {
  id: number;
  token: string;
  attempts: number;
  roundAttempts: number;
  startedAt: number;
  state: DeliveriesTable['state'];
  outcome: string | null;
  nextAttemptAt: number;
  lastStatus: number | null;
  lastError: string | null;
  completedAt: number | null;
  /** The delivery's headers from now on (JSON), when the channel narrowed them (e-mail: the recipients left); null keeps them. */
  headers: string | null;
}

/** One row of the attempt log; the reply's headers already as JSON text. */
export type AttemptRow = Omit<Selectable<DeliveryAttemptsTable>, 'id' | 'response_headers'> & { response_headers: string | null };

/**
 * Records a batch of attempts inside the caller's transaction (on PostgreSQL it may pass the
 * database: the batch is one statement, atomic by itself): the attempt log rows (always: an
 * attempt happened, whoever holds the delivery now), and each delivery's new state, only where the
 * token of the claim that made the attempt is still the delivery's. Answers the ids changed.
 */
export async function recordAttempts(store: Store, trx: Trx | Store['db'], attempts: AttemptRow[], outcomes: AttemptOutcomeRow[], now: number): Promise<Set<number>> {
  // The transaction holds SQLite's one connection: the prepared statements run inside it.
  if (store.dialect === 'sqlite') return sqliteStatements(store.raw).record(attempts, outcomes, now);
  // One statement for the batch, its values as arrays (the same text whatever the batch's size):
  // the attempt log, the outcomes under their claims' tokens, and the queue rows of those changed
  // (deleted when the delivery ended, due again when it will be retried).
  const a = attempts;
  const o = outcomes;
  const result = await sql<{ id: number }>`${named('record_attempts')}
    with logged as (
      insert into delivery_attempts (delivery_id, attempt, worker, started_at, duration_ms, status, response_headers, response_body, error, outcome, reason)
      select delivery_id, attempt, worker, started_at, duration_ms, status, cast(response_headers as jsonb), response_body, error, outcome, reason
      from unnest(${a.map((r) => r.delivery_id)}::bigint[], ${a.map((r) => r.attempt)}::int[], ${a.map((r) => r.worker)}::text[], ${a.map((r) => r.started_at)}::bigint[],
        ${a.map((r) => r.duration_ms)}::int[], ${a.map((r) => r.status)}::int[], ${a.map((r) => r.response_headers)}::text[], ${a.map((r) => r.response_body)}::text[],
        ${a.map((r) => r.error)}::text[], ${a.map((r) => r.outcome)}::text[], ${a.map((r) => r.reason)}::text[])
        as t (delivery_id, attempt, worker, started_at, duration_ms, status, response_headers, response_body, error, outcome, reason)),
    v as (
      select * from unnest(${o.map((r) => r.id)}::bigint[], ${o.map((r) => r.token)}::text[], ${o.map((r) => r.attempts)}::int[], ${o.map((r) => r.roundAttempts)}::int[],
        ${o.map((r) => r.startedAt)}::bigint[], ${o.map((r) => r.state)}::text[], ${o.map((r) => r.outcome)}::text[], ${o.map((r) => r.nextAttemptAt)}::bigint[],
        ${o.map((r) => r.lastStatus)}::int[], ${o.map((r) => r.lastError)}::text[], ${o.map((r) => r.completedAt)}::bigint[], ${o.map((r) => r.headers)}::text[])
        as v (id, token, attempts, round_attempts, started_at, state, outcome, next_attempt_at, last_status, last_error, completed_at, headers)),
    changed as (
      update deliveries set
        attempts = v.attempts, round_attempts = v.round_attempts,
        first_attempt_at = coalesce(deliveries.first_attempt_at, v.started_at),
        state = v.state, outcome = v.outcome, next_attempt_at = v.next_attempt_at,
        lease_owner = null, lease_token = null, lease_expires_at = null,
        last_status = v.last_status, last_error = v.last_error, updated_at = ${now}, completed_at = v.completed_at,
        headers = coalesce(cast(v.headers as jsonb), deliveries.headers)
      from v
      where deliveries.id = v.id and deliveries.lease_token = v.token and deliveries.state = ${PENDING}
      returning deliveries.id, deliveries.state, deliveries.next_attempt_at),
    ended as (delete from delivery_queue as q using changed where q.delivery_id = changed.id and changed.state <> ${PENDING}),
    retried as (update delivery_queue as q set run_at = changed.next_attempt_at, leased_until = null from changed where q.delivery_id = changed.id and changed.state = ${PENDING})
    select id from changed`.execute(trx);
  return new Set(result.rows.map((r) => Number(r.id)));
}

// ----- schedules -----

/**
 * Leases up to `limit` due schedules of the given kinds (those this process has handlers for).
 * The planned time (next_run_at) stays as it is while the run goes on: completing computes the next
 * from it, and a run asked for meanwhile (next_run_at moved) is kept.
 */
export async function claimSchedules(store: Store, kinds: string[], limit: number, worker: string, now: number, leaseMs: number): Promise<(ScheduleRow & { lease_token: string })[]> {
  if (kinds.length === 0) return [];
  const token = newLeaseToken(worker);
  const due = (db: typeof store.db) =>
    db
      .selectFrom('schedules')
      .select('id')
      .where('next_run_at', '<=', now)
      .where('kind', 'in', kinds)
      .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<=', now)]))
      .orderBy('next_run_at')
      .limit(limit);
  // Nearly every poll finds nothing due: a read answers that without taking SQLite's writer.
  if (!(await due(store.db).executeTakeFirst())) return [];
  const rows = await store.db
    .updateTable('schedules')
    .set({ lease_owner: worker, lease_token: token, lease_expires_at: now + leaseMs, last_started_at: now, updated_at: now })
    .where('id', 'in', due(store.db).$if(store.dialect === 'postgres', (q) => q.forUpdate().skipLocked()))
    .returningAll()
    .execute();
  return rows as (ScheduleRow & { lease_token: string })[];
}

/** Extends a schedule's lease its claim still holds; false when it is gone. */
export async function renewScheduleLease(store: Store, id: number, token: string, now: number, leaseMs: number): Promise<boolean> {
  const res = await store.db
    .updateTable('schedules')
    .set({ lease_expires_at: now + leaseMs })
    .where('id', '=', id)
    .where('lease_token', '=', token)
    .where('lease_expires_at', '>', now)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/**
 * Ends a run under its claim: the schedule's next run (unless someone moved next_run_at away from
 * `planned` meanwhile, asking for another run: that stands), its counters and error. False when the
 * claim no longer holds the schedule (it ran out; whoever claimed it next completes it).
 */
export async function completeSchedule(
  store: Store,
  run: { id: number; token: string; planned: number | null; next: number | null; missed: number; error: string | null },
  now: number,
): Promise<boolean> {
  const res = await store.db
    .updateTable('schedules')
    .set((eb) => ({
      next_run_at:
        run.planned === null
          ? eb.case().when('next_run_at', 'is', null).then(run.next).else(eb.ref('next_run_at')).end()
          : eb.case().when('next_run_at', '=', run.planned).then(run.next).else(eb.ref('next_run_at')).end(),
      lease_owner: null,
      lease_token: null,
      lease_expires_at: null,
      runs: eb('runs', '+', run.error === null && run.missed === 0 ? 1 : 0),
      missed: eb('missed', '+', run.missed),
      last_finished_at: now,
      last_error: run.error,
      updated_at: now,
    }))
    .where('id', '=', run.id)
    .where('lease_token', '=', run.token)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

// ----- SQLite: the dispatcher's hot statements, prepared once -----

/**
 * Through Kysely each batch compiled a statement of its own size (and prepared it again), which
 * cost more than the writes themselves. Callers hold Kysely's connection (a transaction or
 * `db.connection()`), so nothing else runs on it meanwhile.
 */
interface SqliteLeaseStatements {
  claim(lane: Lane, limit: number, worker: string, token: string, now: number, leaseMs: number): ClaimedDelivery[];
  record(attempts: AttemptRow[], outcomes: AttemptOutcomeRow[], now: number): Set<number>;
}

const prepared = new WeakMap<BetterSqlite3.Database, SqliteLeaseStatements>();

function sqliteStatements(raw: BetterSqlite3.Database): SqliteLeaseStatements {
  let statements = prepared.get(raw);
  if (statements) return statements;
  const returning = [...CLAIMED_COLUMNS, `${BODY} as body`].join(', ');
  const claimWhere = (lane: string) =>
    `update deliveries set lease_owner = ?, lease_token = ?, lease_expires_at = ?, next_attempt_at = ?, updated_at = ?
     where id in (select id from deliveries where ${lane} and state = 'pending' and next_attempt_at <= ?
                  order by next_attempt_at, id limit ?)
     returning ${returning}`;
  const claimConnection = raw.prepare(claimWhere('connection_id = ?'));
  const claimChannel = raw.prepare(claimWhere('connection_id is null and channel = ?'));
  const insertAttempt = raw.prepare(
    `insert into delivery_attempts (delivery_id, attempt, worker, started_at, duration_ms, status, response_headers, response_body, error, outcome, reason)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const recordOutcome = raw.prepare(
    `update deliveries set attempts = ?, round_attempts = ?, first_attempt_at = coalesce(first_attempt_at, ?), state = ?, outcome = ?,
       next_attempt_at = ?, lease_owner = null, lease_token = null, lease_expires_at = null, last_status = ?, last_error = ?, updated_at = ?, completed_at = ?,
       headers = coalesce(?, headers)
     where id = ? and lease_token = ? and state = 'pending'`,
  );
  statements = {
    claim(lane, limit, worker, token, now, leaseMs) {
      const until = now + leaseMs;
      const rows = 'connectionId' in lane ? claimConnection.all(worker, token, until, until, now, lane.connectionId, now, limit) : claimChannel.all(worker, token, until, until, now, lane.channel, now, limit);
      return rows as ClaimedDelivery[];
    },
    record(attempts, outcomes, now) {
      for (const a of attempts) {
        insertAttempt.run(a.delivery_id, a.attempt, a.worker, a.started_at, a.duration_ms, a.status, a.response_headers, a.response_body, a.error, a.outcome, a.reason);
      }
      const changed = new Set<number>();
      for (const o of outcomes) {
        const res = recordOutcome.run(o.attempts, o.roundAttempts, o.startedAt, o.state, o.outcome, o.nextAttemptAt, o.lastStatus, o.lastError, now, o.completedAt, o.headers, o.id, o.token);
        if (res.changes === 1) changed.add(o.id);
      }
      return changed;
    },
  };
  prepared.set(raw, statements);
  return statements;
}

import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Dialect, Store } from './database.js';
import type { Database, SyncPagesTable } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;
export type SyncAction = SyncPagesTable['action'];

/** A page member's fields (seed 002) and the profile properties they come from; exported properties follow. */
const MEMBER_FIELDS: [string, string][] = [
  ['email', '$email'],
  ['first_name', '$first_name'],
  ['last_name', '$last_name'],
  ['phone_number', '$phone'],
];

/**
 * A member as a page carries it, as one SQL expression on `p`: mixpanel_distinct_id, the identity
 * fields as text, the exported properties as they are; a field with no value (missing, null or
 * empty text) is null here and left out when the page is built (see pageMembersJson), so a diff's
 * snapshot of every member does not pay for it.
 */
function memberObject(dialect: Dialect, exported: string[]): RawBuilder<unknown> {
  const col = sql.ref('p.properties');
  if (dialect === 'postgres') {
    const fields = MEMBER_FIELDS.map(([field, key]) => sql`${field}::text, nullif(${col} ->> ${key}, '')`);
    const props = exported.map((k) => sql`${k}::text, case when ${col} ->> ${k} = '' then null else ${col} -> ${k} end`);
    return sql`jsonb_build_object('mixpanel_distinct_id', p.distinct_id, ${sql.join([...fields, ...props])})`;
  }
  const path = (k: string) => `$."${k}"`;
  const fields = MEMBER_FIELDS.map(([field, key]) => sql`${field}, nullif(cast(${col} ->> ${path(key)} as text), '')`);
  const props = exported.map((k) => sql`${k}, case when ${col} ->> ${path(k)} = '' then null else ${col} -> ${path(k)} end`);
  return sql`json_object('mixpanel_distinct_id', p.distinct_id, ${sql.join([...fields, ...props])})`;
}

/**
 * Writes the run's membership snapshot in one INSERT … SELECT, each member in its page form: the
 * members never pass through the process, whatever the cohort's size. Answers how many.
 */
export async function writeSnapshot(trx: Db, dialect: Dialect, runId: number, projectId: number, condition: RawBuilder<boolean>, exported: string[]): Promise<number> {
  const res = await sql`insert into sync_snapshots (run_id, distinct_id, member)
    select ${runId}, p.distinct_id, ${memberObject(dialect, exported)} from profiles as p where p.project_id = ${projectId} and ${condition}`.execute(trx);
  return Number(res.numAffectedRows ?? 0);
}

/** The members an action sends: everyone (full), those not in the base (adds), those gone since the base (removes). */
function actionSet(action: SyncAction, runId: number, baseRunId: number | null): RawBuilder<{ distinct_id: string; member: unknown }> {
  if (action === 'members') return sql`select s.distinct_id, s.member from sync_snapshots as s where s.run_id = ${runId}`;
  const [from, other] = action === 'add_members' ? [runId, baseRunId] : [baseRunId, runId];
  return sql`select s.distinct_id, s.member from sync_snapshots as s where s.run_id = ${from}
    and not exists (select 1 from sync_snapshots as o where o.run_id = ${other} and o.distinct_id = s.distinct_id)`;
}

/**
 * Cuts an action's members into pages of `size` in distinct_id order, numbered from `firstPage`:
 * each page is stored as its first id (and the next page's), so its contents are fixed for the
 * run and read back a page at a time. An action with no members still gets one (empty) page.
 * Answers the pages made and the members they hold.
 */
export async function planPages(trx: Db, runId: number, baseRunId: number | null, action: SyncAction, firstPage: number, size: number): Promise<{ pages: number; members: number }> {
  const set = actionSet(action, runId, baseRunId);
  // Each page's first id in one pass (row_number streams in index order; a count over the whole
  // set would buffer it); the size is then whole pages plus what the last one holds.
  const starts = (
    await sql<{ distinct_id: string }>`select distinct_id from (select x.distinct_id, row_number() over (order by x.distinct_id) as rn from (${set}) as x) as y
      where (rn - 1) % ${size} = 0 order by distinct_id`.execute(trx)
  ).rows.map((r) => r.distinct_id);
  const last = starts.at(-1);
  const inLast = last === undefined ? 0 : Number((await sql<{ n: number }>`select count(*) as n from (${set}) as x where x.distinct_id >= ${last}`.execute(trx)).rows[0]?.n ?? 0);
  const total = starts.length === 0 ? 0 : (starts.length - 1) * size + inLast;
  const rows =
    starts.length === 0
      ? [{ run_id: runId, page: firstPage, action, first_id: null, next_first_id: null, member_count: 0, state: 'pending' as const }]
      : starts.map((first, i) => ({
          run_id: runId,
          page: firstPage + i,
          action,
          first_id: first,
          next_first_id: starts[i + 1] ?? null,
          member_count: Math.min(size, total - i * size),
          state: 'pending' as const,
        }));
  for (let i = 0; i < rows.length; i += 500) await trx.insertInto('sync_pages').values(rows.slice(i, i + 500)).execute();
  return { pages: rows.length, members: total };
}

/**
 * The members of one page, in distinct_id order, as the JSON text of an array built by the
 * database, fields with no value left out (json_patch onto {} and jsonb_strip_nulls drop nulls).
 */
export async function pageMembersJson(trx: Db, dialect: Dialect, runId: number, baseRunId: number | null, page: { action: SyncAction; first_id: string | null; next_first_id: string | null }): Promise<string> {
  if (page.first_id === null) return '[]';
  const set = actionSet(page.action, runId, baseRunId);
  const upper = page.next_first_id === null ? sql`` : sql`and x.distinct_id < ${page.next_first_id}`;
  const members = sql`(${set}) as x where x.distinct_id >= ${page.first_id} ${upper}`;
  const array =
    dialect === 'postgres'
      ? sql<{ members: string }>`select coalesce(json_agg(jsonb_strip_nulls(x.member) order by x.distinct_id), '[]'::json)::text as members from ${members}`
      : sql<{ members: string }>`select json_group_array(json_patch('{}', y.member)) as members from (select x.member from ${members} order by x.distinct_id) as y`;
  return (await array.execute(trx)).rows[0]?.members ?? '[]';
}

/**
 * Deletes up to `limit` snapshot rows of one run that no sync will read again (neither a sync's
 * base nor its current run), and its pages once its snapshot is gone. A superseded snapshot of a
 * million members is dropped in slices, off the path of any run. Answers whether there was work.
 */
export async function sweepStaleRun(db: Db, limit: number): Promise<boolean> {
  const stale = await db
    .selectFrom('sync_runs as r')
    .select('r.id')
    .where('r.state', 'in', ['succeeded', 'abandoned'])
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('cohort_syncs as s').select('s.id').where((eb) => eb.or([eb('s.base_run_id', '=', eb.ref('r.id')), eb('s.current_run_id', '=', eb.ref('r.id'))])))),
    )
    .where(({ or, exists, selectFrom }) =>
      or([exists(selectFrom('sync_snapshots as x').select('x.run_id').whereRef('x.run_id', '=', 'r.id')), exists(selectFrom('sync_pages as g').select('g.run_id').whereRef('g.run_id', '=', 'r.id'))]),
    )
    .orderBy('r.id')
    .limit(1)
    .executeTakeFirst();
  if (!stale) return false;
  const slice = db.selectFrom('sync_snapshots').select('distinct_id').where('run_id', '=', stale.id).limit(limit);
  const res = await db.deleteFrom('sync_snapshots').where('run_id', '=', stale.id).where('distinct_id', 'in', slice).executeTakeFirst();
  if (Number(res.numDeletedRows) < limit) await db.deleteFrom('sync_pages').where('run_id', '=', stale.id).execute();
  return true;
}

/** The cohort syncs that send to a connection (it cannot be deleted under them). */
export async function syncsUsingConnection(store: Store, connectionId: number): Promise<number[]> {
  const rows = await store.db.selectFrom('cohort_syncs').select('id').where('connection_id', '=', connectionId).orderBy('id').execute();
  return rows.map((r) => r.id);
}

import { sql, type Kysely, type RawBuilder, type Selectable, type Transaction } from 'kysely';
import type { Dialect } from './database.js';
import { cancelDeliveries } from './outbox-repo.js';
import type { Database, SyncPagesTable } from './schema.js';

/**
 * A cohort-sync run's membership and pages: snapshots (sorted id chunks), the pages cut from them,
 * each page's members as the database builds them, and the pages' states as the outbox takes them.
 */

type Db = Kysely<Database> | Transaction<Database>;
export type SyncAction = SyncPagesTable['action'];
/** A page to write with its ids; read by lookups (PageRead) unless `scan` says otherwise. */
export type NewPage = Omit<SyncPagesTable, 'state' | 'delivery_id' | 'scan'> & { ids: string; scan?: number };

/**
 * Writes the run's membership as chunks of `chunkSize` distinct ids in code-point order (SQLite's
 * binary order, PostgreSQL's "C" collation, and compareIds in JavaScript all agree on it), and
 * answers how many members it holds. The ids go from the query into the chunk rows as JSON text:
 * on SQLite a keyset loop (one indexed range per chunk), on PostgreSQL one INSERT … SELECT.
 * SQLite's aggregates take rows in the order of an ordered subquery (an ORDER BY inside the
 * aggregate would sort again what the index already sorted); IdStream checks the order as it reads.
 */
export async function writeSnapshot(trx: Db, dialect: Dialect, runId: number, projectId: number, condition: RawBuilder<boolean>, chunkSize: number): Promise<number> {
  if (dialect === 'postgres') {
    const res = await sql`insert into sync_snapshots (run_id, chunk, first_id, last_id, member_count, ids)
      select ${runId}, c, min(id collate "C"), max(id collate "C"), count(*), json_agg(id order by id collate "C")::text
      from (select p.distinct_id as id, (row_number() over (order by p.distinct_id collate "C") - 1) / ${chunkSize} as c
            from profiles as p where p.project_id = ${projectId} and ${condition}) as x
      group by c`.execute(trx);
    if (Number(res.numAffectedRows ?? 0) === 0) return 0;
    const total = await trx.selectFrom('sync_snapshots').select((eb) => eb.fn.sum<number>('member_count').as('n')).where('run_id', '=', runId).executeTakeFirstOrThrow();
    return Number(total.n);
  }
  let members = 0;
  for (let chunk = 0, after: string | undefined; ; chunk++) {
    const above = after === undefined ? sql`` : sql`and p.distinct_id > ${after}`;
    const { rows } = await sql<{ n: number; first: string | null; last: string | null; ids: string }>`
      select count(*) as n, min(x.id) as first, max(x.id) as last, json_group_array(x.id) as ids
      from (select p.distinct_id as id from profiles as p where p.project_id = ${projectId} ${above} and ${condition} order by p.distinct_id limit ${chunkSize}) as x`.execute(trx);
    const got = rows[0];
    if (!got || Number(got.n) === 0 || got.first === null || got.last === null) return members;
    await trx.insertInto('sync_snapshots').values({ run_id: runId, chunk, first_id: got.first, last_id: got.last, member_count: Number(got.n), ids: got.ids }).execute();
    members += Number(got.n);
    if (Number(got.n) < chunkSize) return members;
    after = got.last;
  }
}

/** One chunk of a run's snapshot, a JSON array of ids (undefined past the last). */
export async function readSnapshotChunk(db: Db, runId: number, chunk: number): Promise<string | undefined> {
  const row = await db.selectFrom('sync_snapshots').select('ids').where('run_id', '=', runId).where('chunk', '=', chunk).executeTakeFirst();
  return row?.ids;
}

export async function insertPages(db: Db, pages: NewPage[]): Promise<void> {
  for (let i = 0; i < pages.length; i += 100) {
    const slice = pages.slice(i, i + 100);
    await db
      .insertInto('sync_pages')
      .values(slice.map(({ ids: _, scan, ...p }) => ({ ...p, scan: scan ?? PageRead.lookup, state: 'pending' as const, delivery_id: null })))
      .execute();
    await db
      .insertInto('sync_page_ids')
      .values(slice.map((p) => ({ run_id: p.run_id, page: p.page, ids: p.ids })))
      .execute();
  }
}

/**
 * A full run's pages are its snapshot's chunks, one for one (written with chunkSize = the page
 * size): planned in one statement, their ids never read into the process. An empty cohort still
 * gets one, empty, page. Answers the number of pages.
 */
export async function planFullPages(db: Db, dialect: Dialect, runId: number, projectId: number, members: number): Promise<number> {
  const scan = dialect === 'sqlite' ? await fullPageRead(db, projectId, members) : PageRead.lookup;
  const res = await db
    .insertInto('sync_pages')
    .columns(['run_id', 'page', 'action', 'first_id', 'last_id', 'member_count', 'scan', 'state', 'delivery_id'])
    .expression((eb) =>
      eb
        .selectFrom('sync_snapshots')
        .select((e) => [
          'run_id',
          e('chunk', '+', 1).as('page'),
          sql.lit('members').as('action'),
          'first_id',
          'last_id',
          'member_count',
          sql.lit(scan).as('scan'),
          sql.lit('pending').as('state'),
          sql.lit(null).as('delivery_id'),
        ])
        .where('run_id', '=', runId),
    )
    .executeTakeFirst();
  const pages = Number(res.numInsertedOrUpdatedRows ?? 0);
  if (pages > 0) return pages;
  await db.insertInto('sync_pages').values({ run_id: runId, page: 1, action: 'members', first_id: null, last_id: null, member_count: 0, scan, state: 'pending', delivery_id: null }).execute();
  return 1;
}

/** A page's distinct ids, as the JSON text of an array: a full run's from its snapshot chunk. */
export async function pageIds(db: Db, page: Pick<SyncPagesTable, 'run_id' | 'page' | 'action'>): Promise<string> {
  const row =
    page.action === 'members'
      ? await db.selectFrom('sync_snapshots').select('ids').where('run_id', '=', page.run_id).where('chunk', '=', page.page - 1).executeTakeFirstOrThrow()
      : await db.selectFrom('sync_page_ids').select('ids').where('run_id', '=', page.run_id).where('page', '=', page.page).executeTakeFirstOrThrow();
  return row.ids;
}

/** Moves the pages from `from` on by `by` (remove pages are cut before the number of add pages is known). */
export async function shiftPages(db: Db, runId: number, from: number, by: number): Promise<void> {
  await db.updateTable('sync_pages').set((eb) => ({ page: eb('page', '+', by) })).where('run_id', '=', runId).where('page', '>=', from).execute();
  await db.updateTable('sync_page_ids').set((eb) => ({ page: eb('page', '+', by) })).where('run_id', '=', runId).where('page', '>=', from).execute();
}

/** Where members are most of the profiles, SQLite builds a page fastest by scanning its id range. */
async function fullPageRead(db: Db, projectId: number, members: number): Promise<number> {
  const row = await db.selectFrom('profiles').select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', projectId).executeTakeFirstOrThrow();
  const profiles = Number(row.n);
  return members >= profiles * 0.95 ? PageRead.range : members >= profiles / 4 ? PageRead.probe : PageRead.lookup;
}

/** The exported properties appended to each member's head (profiles.sync_member): missing, null or empty text left out. */
function exportedFields(dialect: Dialect, exported: string[]): RawBuilder<string> {
  if (exported.length === 0) return sql`''`;
  const parts = exported.map((k) => {
    const label = `,${JSON.stringify(k)}:`;
    if (dialect === 'postgres') {
      return sql`coalesce(case when jsonb_typeof(p.properties -> ${k}) = 'null' or p.properties ->> ${k} = '' then null else ${label} || (p.properties -> ${k})::text end, '')`;
    }
    const path = `$."${k}"`;
    return sql`coalesce(case when json_type(p.properties, ${path}) = 'null' or p.properties ->> ${path} = '' then null else ${label} || (p.properties -> ${path}) end, '')`;
  });
  return sql`(${sql.join(parts, sql` || `)})`;
}

/** How a page's profiles are read on SQLite (sync_pages.scan): chosen by how dense the cohort is among the profiles. */
export const PageRead = {
  /** One lookup per member. */
  lookup: 0,
  /** The page's id range, probing each profile against the page's ids. */
  probe: 1,
  /** The page's id range as it is: every profile in it is expected to be a member (checked). */
  range: 2,
} as const;

/**
 * A page's members as the JSON text of an array, in the page's id order, each built from the
 * profile as it is now: its head (profiles.sync_member), the exported properties, the brace. A
 * member whose profile is gone is sent with its distinct id alone. On SQLite a dense page is read
 * by scanning its id range (lookups cost twice as much there); when the range turns out to hold
 * other profiles or to miss a member, the page is read the next, more exact, way.
 */
export async function pageMembersJson(db: Db, dialect: Dialect, projectId: number, page: Pick<SyncPagesTable, 'run_id' | 'page' | 'action' | 'first_id' | 'last_id' | 'member_count' | 'scan'>, exported: string[]): Promise<string> {
  if (page.member_count === 0) return '[]';
  const ids = await pageIds(db, page);
  const extra = exportedFields(dialect, exported);
  if (dialect === 'postgres') {
    const { rows } = await sql<{ members: string }>`
      select '[' || coalesce(string_agg(coalesce(p.sync_member || ${extra}, '{"mixpanel_distinct_id":' || to_json(u.id)::text) || '}', ',' order by u.n), '') || ']' as members
      from json_array_elements_text(cast(${ids} as json)) with ordinality as u(id, n)
      left join profiles as p on p.project_id = ${projectId} and p.distinct_id = u.id`.execute(db);
    return rows[0]!.members;
  }
  const range = sql`p.project_id = ${projectId} and p.distinct_id >= ${page.first_id} and p.distinct_id <= ${page.last_id}`;
  if (page.scan === PageRead.range) {
    // Right when the range's ids are the page's ids, which the JSON text of both shows.
    const { rows } = await sql<{ ids: string; members: string }>`
      select json_group_array(x.id) as ids, '[' || coalesce(group_concat(x.m, ','), '') || ']' as members
      from (select p.distinct_id as id, p.sync_member || ${extra} || '}' as m from profiles as p where ${range} order by p.distinct_id) as x`.execute(db);
    if (rows[0]!.ids === ids) return rows[0]!.members;
  }
  if (page.scan !== PageRead.lookup) {
    // The unary + keeps SQLite on the range scan, probing the page's ids for each row it reads.
    const { rows } = await sql<{ n: number; members: string }>`
      select count(*) as n, '[' || coalesce(group_concat(x.m, ','), '') || ']' as members
      from (select p.sync_member || ${extra} || '}' as m from profiles as p
            where ${range} and +p.distinct_id in (select value from json_each(${ids})) order by p.distinct_id) as x`.execute(db);
    if (Number(rows[0]!.n) === page.member_count) return rows[0]!.members;
  }
  const { rows } = await sql<{ members: string }>`
    select '[' || coalesce(group_concat(x.m, ','), '') || ']' as members
    from (select coalesce(p.sync_member || ${extra}, '{"mixpanel_distinct_id":' || json_quote(j.value)) || '}' as m
          from json_each(${ids}) as j left join profiles as p on p.project_id = ${projectId} and p.distinct_id = j.value order by j.key) as x`.execute(db);
  return rows[0]!.members;
}

/**
 * Takes back a run's queued pages that no worker has claimed (the sync paused, failed or was
 * deleted): their deliveries are cancelled and the pages stopped, to be sent again, as they are,
 * when the run is resumed.
 */
export async function stopQueuedPages(db: Db, runId: number, reason: string, now: number): Promise<void> {
  const queued = await db.selectFrom('sync_pages').select('delivery_id').where('run_id', '=', runId).where('state', '=', 'queued').execute();
  if (queued.length === 0) return;
  const cancelled = await cancelDeliveries(db, { ids: queued.flatMap((q) => (q.delivery_id === null ? [] : [q.delivery_id])) }, reason, now);
  if (cancelled.length === 0) return;
  await db.updateTable('sync_pages').set({ state: 'stopped' }).where('run_id', '=', runId).where('delivery_id', 'in', cancelled).execute();
}

/** How many of a run's pages are in the outbox and not yet acknowledged. */
export async function countQueuedPages(db: Db, runId: number): Promise<number> {
  const row = await db.selectFrom('sync_pages').select((eb) => eb.fn.countAll<number>().as('n')).where('run_id', '=', runId).where('state', '=', 'queued').executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The run's next pages to put in the outbox, in page order: never sent, or stopped (sent before, to go again). */
export async function pagesToQueue(db: Db, runId: number, limit: number): Promise<Selectable<SyncPagesTable>[]> {
  return db.selectFrom('sync_pages').selectAll().where('run_id', '=', runId).where('state', 'in', ['pending', 'stopped']).orderBy('page').limit(limit).execute();
}

/** Marks pages queued with their deliveries, in one statement. */
export async function markPagesQueued(db: Db, runId: number, queued: { page: number; deliveryId: number }[]): Promise<void> {
  if (queued.length === 0) return;
  await db
    .updateTable('sync_pages')
    .set({ state: 'queued', delivery_id: sql<number>`case page ${sql.join(queued.map((q) => sql`when ${q.page} then cast(${q.deliveryId} as bigint)`), sql` `)} end` })
    .where('run_id', '=', runId)
    .where(
      'page',
      'in',
      queued.map((q) => q.page),
    )
    .execute();
}

/** A page's delivery was delivered: acknowledged, if it was out (a stopped one counts: it was retried by hand). False when this ending was recorded already or its run was abandoned. */
export async function ackPage(db: Db, runId: number, page: number): Promise<boolean> {
  const res = await db.updateTable('sync_pages').set({ state: 'acked' }).where('run_id', '=', runId).where('page', '=', page).where('state', 'in', ['queued', 'stopped']).executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** A page's delivery ended unacknowledged: stopped, to go again as the same delivery on resume. False when it was not out. */
export async function stopPage(db: Db, runId: number, page: number): Promise<boolean> {
  const res = await db.updateTable('sync_pages').set({ state: 'stopped' }).where('run_id', '=', runId).where('page', '=', page).where('state', '=', 'queued').executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

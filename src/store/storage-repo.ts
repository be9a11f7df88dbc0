import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { sql, type CompiledQuery, type Kysely } from 'kysely';
import type { Store } from './database.js';
import { finishedRuns, resumablePageDeliveries } from './retention-repo.js';
import type { Database } from './schema.js';

/**
 * The storage report (GET /api/v1/storage): rows and bytes of every table, and what pruning would
 * remove now. Counting scans whole tables, so on SQLite the report is read on a connection of its
 * own in a thread of its own (sqlite-reader.worker.js): the service's one connection stays free for
 * ingestion and delivery meanwhile. On PostgreSQL it is read through the pool, as any query.
 */

/** Every table, by what it holds. */
export const TABLE_KINDS: Record<keyof Database, string> = {
  projects: 'settings',
  settings: 'settings',
  schedules: 'settings',
  events: 'events',
  event_daily_counts: 'events',
  profiles: 'profiles',
  group_profiles: 'profiles',
  aliases: 'profiles',
  connections: 'deliveries',
  deliveries: 'deliveries',
  delivery_bodies: 'deliveries',
  delivery_attempts: 'deliveries',
  delivery_queue: 'deliveries',
  cohorts: 'cohorts',
  cohort_syncs: 'cohort_syncs',
  sync_runs: 'cohort_syncs',
  sync_snapshots: 'cohort_syncs',
  sync_pages: 'cohort_syncs',
  sync_page_ids: 'cohort_syncs',
  subscriptions: 'subscriptions',
  webhook_events: 'subscriptions',
  cohort_watches: 'membership',
  cohort_members: 'membership',
  dirty_profiles: 'membership',
  messages: 'messages',
  message_runs: 'messages',
  message_recipients: 'messages',
  message_batches: 'messages',
  reports: 'alerts',
  alerts: 'alerts',
  alert_checks: 'alerts',
};

/** The horizon (ms since epoch) of each kind of pruning that is on. */
export type Horizons = Partial<Record<'delivery_bodies' | 'deliveries' | 'message_batches' | 'subscription_events' | 'sync_runs' | 'alert_checks' | 'events' | 'event_daily_counts', number>>;

export interface StorageReport {
  database: { bytes: number; freeBytes: number | null; walBytes: number | null };
  tables: { table: string; kind: string; rows: number; bytes: number }[];
  /** Rows the next pruning would remove if it ran now (bodies: emptied), by kind; sync_snapshots: rows of superseded runs waiting to be dropped. */
  prunable: Record<string, number>;
}

function prunableQueries(db: Kysely<Database>, h: Horizons): [string, CompiledQuery][] {
  const count = sql<number>`count(*)`.as('n');
  // Deliveries a run that can still resume would send again.
  const needed = resumablePageDeliveries(db).where('delivery_id', 'is not', null);
  const finished = (horizon: number) =>
    db
      .selectFrom('deliveries')
      .select(count)
      .where('state', '<>', 'pending')
      .where('completed_at', '<', horizon)
      .where('id', 'not in', needed);
  const out: [string, CompiledQuery][] = [];
  if (h.delivery_bodies !== undefined) out.push(['delivery_bodies', finished(h.delivery_bodies).where('body_pruned_at', 'is', null).compile()]);
  if (h.deliveries !== undefined) out.push(['deliveries', finished(h.deliveries).compile()]);
  if (h.message_batches !== undefined) out.push(['message_batches', db.selectFrom('message_batches').select(count).where('finished_at', '<', h.message_batches).compile()]);
  if (h.subscription_events !== undefined) out.push(['subscription_events', db.selectFrom('webhook_events').select(count).where('fanned_out', '=', 1).where('created_at', '<', h.subscription_events).compile()]);
  if (h.sync_runs !== undefined) out.push(['sync_runs', finishedRuns(db, h.sync_runs).select(count).compile()]);
  if (h.alert_checks !== undefined) out.push(['alert_checks', db.selectFrom('alert_checks').select(count).where('checked_at', '<', h.alert_checks).compile()]);
  if (h.events !== undefined) out.push(['events', db.selectFrom('events').select(count).where('time', '<', h.events).compile()]);
  if (h.event_daily_counts !== undefined) out.push(['event_daily_counts', db.selectFrom('event_daily_counts').select(count).where('day', '<', Math.floor(h.event_daily_counts / 86_400_000)).compile()]);
  out.push([
    'sync_snapshots',
    db
      .selectFrom('sync_snapshots')
      .select(count)
      .where('run_id', 'in', db.selectFrom('sync_runs').select('id').where('stale', '=', 1))
      .compile(),
  ]);
  return out;
}

function rowQuery(db: Kysely<Database>, tables: string[]): CompiledQuery {
  return sql.join(tables.map((t) => sql`select ${t} as tbl, count(*) as n from ${sql.table(t)}`), sql` union all `).compile(db) as CompiledQuery;
}

export async function storageReport(store: Store, horizons: Horizons): Promise<StorageReport> {
  // delivery_queue exists on PostgreSQL only (migration 011).
  const tables = Object.keys(TABLE_KINDS).filter((t) => store.dialect === 'postgres' || t !== 'delivery_queue');
  const prunable = prunableQueries(store.db, horizons);
  const queries: CompiledQuery[] = [rowQuery(store.db, tables), ...prunable.map(([, q]) => q)];
  let bytes: Map<string, number>;
  let database: StorageReport['database'];
  let results: unknown[][];
  if (store.dialect === 'sqlite') {
    const sizes = [
      sql`select coalesce(m.tbl_name, d.name) as tbl, sum(d.pgsize) as bytes from dbstat as d left join sqlite_schema as m on m.name = d.name group by 1`.compile(store.db),
      sql`select page_count * page_size as bytes, freelist_count * page_size as free from pragma_page_count(), pragma_page_size(), pragma_freelist_count()`.compile(store.db),
    ];
    const all = await readInThread(store.raw.name, [...queries, ...sizes]);
    results = all.slice(0, queries.length);
    bytes = new Map((all[queries.length] as { tbl: string; bytes: number }[]).map((r) => [r.tbl, Number(r.bytes)]));
    const file = (all[queries.length + 1] as { bytes: number; free: number }[])[0]!;
    const wal = fs.statSync(`${store.raw.name}-wal`, { throwIfNoEntry: false });
    database = { bytes: Number(file.bytes), freeBytes: Number(file.free), walBytes: wal ? wal.size : 0 };
  } else {
    results = await Promise.all(queries.map(async (q) => (await store.db.executeQuery(q)).rows));
    const sizes = await sql<{ tbl: string; bytes: number }>`
      select c.relname as tbl, pg_total_relation_size(c.oid) as bytes from pg_class c
      join pg_namespace n on n.oid = c.relnamespace where n.nspname = current_schema() and c.relkind = 'r'`.execute(store.db);
    bytes = new Map(sizes.rows.map((r) => [r.tbl, Number(r.bytes)]));
    const total = await sql<{ bytes: number }>`select pg_database_size(current_database()) as bytes`.execute(store.db);
    database = { bytes: Number(total.rows[0]!.bytes), freeBytes: null, walBytes: null };
  }
  const rows = results[0] as { tbl: string; n: number }[];
  return {
    database,
    tables: rows.map((r) => ({ table: r.tbl, kind: TABLE_KINDS[r.tbl as keyof Database], rows: Number(r.n), bytes: bytes.get(r.tbl) ?? 0 })),
    prunable: Object.fromEntries(prunable.map(([kind], i) => [kind, Number((results[i + 1] as { n: number }[])[0]?.n ?? 0)])),
  };
}

function readInThread(file: string, queries: CompiledQuery[]): Promise<unknown[][]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./sqlite-reader.worker.js', import.meta.url), { workerData: { file, queries: queries.map((q) => ({ sql: q.sql, parameters: q.parameters })) } });
    worker.once('message', (msg: { rows?: unknown[][]; error?: string }) => (msg.rows ? resolve(msg.rows) : reject(new Error(`reading the storage report failed: ${msg.error}`))));
    worker.once('error', reject);
  });
}

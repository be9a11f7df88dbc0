import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../database.js';

const BACKFILL_ROWS = 1000;

/**
 * The page form of a profile as this migration wrote it. A copy, not an import: a migration's
 * output must not change when the live code does (the profile writer keeps the column up to date
 * from then on).
 */
function syncMemberHead(distinctId: string, properties: Record<string, unknown>): string {
  let head = `{"mixpanel_distinct_id":${JSON.stringify(distinctId)}`;
  for (const [field, key] of [['email', '$email'], ['first_name', '$first_name'], ['last_name', '$last_name'], ['phone_number', '$phone']] as const) {
    const v = properties[key];
    if (v === undefined || v === null || v === '') continue;
    head += `,"${field}":${JSON.stringify(typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v))}`;
  }
  return head;
}

/**
 * Cohort syncs at scale:
 * - profiles.sync_member: each profile's page form (syncMemberHead below), kept by the profile writer;
 * - sync_snapshots hold a run's membership as chunks of sorted ids, and sync_page_ids each diff page's ids:
 *   a diff is a merge of two sorted streams, not two anti-joins over a million rows;
 * - a large delivery body is stored apart (delivery_bodies), so the updates of a delivery's life
 *   (lease, outcome) do not rewrite it;
 * - on SQLite, profile properties are stored as JSONB: cohort conditions read them without parsing.
 * Runs under way are abandoned (their syncs start again with a full run); their queued pages are cancelled.
 */
export function syncPagesApart(dialect: Dialect): Migration {
  const idType = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<any>) {
      const now = Date.now();
      await db.schema.alterTable('profiles').addColumn('sync_member', 'text', (c) => c.notNull().defaultTo('')).execute();
      for (let after: string | undefined, project = -1; ; ) {
        let q = db.selectFrom('profiles').select(['project_id', 'distinct_id', 'properties']).orderBy('project_id').orderBy('distinct_id').limit(BACKFILL_ROWS);
        if (after !== undefined) q = q.where((eb) => eb.or([eb('project_id', '>', project), eb.and([eb('project_id', '=', project), eb('distinct_id', '>', after!)])]));
        const rows = await q.execute();
        for (const r of rows) {
          const props = typeof r.properties === 'string' ? JSON.parse(r.properties) : r.properties;
          await db.updateTable('profiles').set({ sync_member: syncMemberHead(r.distinct_id, props) }).where('project_id', '=', r.project_id).where('distinct_id', '=', r.distinct_id).execute();
        }
        if (rows.length < BACKFILL_ROWS) break;
        const last = rows[rows.length - 1]!;
        [project, after] = [last.project_id, last.distinct_id];
      }

      // SQLite keeps profile properties as JSONB from now on (store/json-sql.ts profilePropertiesText).
      if (dialect === 'sqlite') await sql`update profiles set properties = jsonb(properties)`.execute(db);

      await db.schema.alterTable('deliveries').addColumn('body_apart', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema
        .createTable('delivery_bodies')
        .addColumn('delivery_id', idType, (c) => c.primaryKey())
        .addColumn('body', 'text', (c) => c.notNull())
        .execute();

      await db.updateTable('sync_runs').set({ state: 'abandoned', finished_at: now }).where('state', 'in', ['running', 'failed', 'paused']).execute();
      await db.updateTable('cohort_syncs').set({ base_run_id: null, base_at: null, current_run_id: null }).execute();
      await db
        .updateTable('deliveries')
        .set({ state: 'cancelled', outcome: 'cancelled', last_error: 'the cohort sync run was abandoned by an upgrade', completed_at: now, updated_at: now })
        .where('owner_kind', '=', 'cohort-sync')
        .where('state', '=', sql.lit('pending'))
        .execute();
      await db.schema.alterTable('sync_runs').addColumn('cohort_name', 'text').execute();
      await db.schema.alterTable('sync_runs').addColumn('cohort_description', 'text').execute();

      await db.schema.dropTable('sync_snapshots').execute();
      await db.schema
        .createTable('sync_snapshots')
        .addColumn('run_id', 'integer', (c) => c.notNull())
        .addColumn('chunk', 'integer', (c) => c.notNull())
        .addColumn('first_id', 'text', (c) => c.notNull())
        .addColumn('last_id', 'text', (c) => c.notNull())
        .addColumn('member_count', 'integer', (c) => c.notNull())
        // A JSON array of distinct ids in code-point order; chunks in order hold the whole membership.
        // A chunk holds a page's worth: a full run's page N is chunk N − 1.
        .addColumn('ids', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('sync_snapshots_pk', ['run_id', 'chunk'])
        .execute();

      await db.schema.dropTable('sync_pages').execute();
      await db.schema
        .createTable('sync_pages')
        .addColumn('run_id', 'integer', (c) => c.notNull())
        .addColumn('page', 'integer', (c) => c.notNull())
        // members | add_members | remove_members
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('first_id', 'text')
        .addColumn('last_id', 'text')
        .addColumn('member_count', 'integer', (c) => c.notNull())
        // How SQLite reads the page's profiles: 0 a lookup each, 1 its id range probed, 2 its id range (PageRead).
        .addColumn('scan', 'integer', (c) => c.notNull())
        // pending (not built) | queued (its delivery is in the outbox) | acked | stopped (its delivery ended unacknowledged)
        .addColumn('state', 'text', (c) => c.notNull())
        // Built once: a resumed run sends this same delivery (same body, same webhook-id) again.
        .addColumn('delivery_id', idType)
        .addPrimaryKeyConstraint('sync_pages_pk', ['run_id', 'page'])
        .execute();
      await db.schema.createIndex('sync_pages_by_state').on('sync_pages').columns(['run_id', 'state', 'page']).execute();
      // A diff page's distinct ids (a JSON array, code-point order), fixed when the run starts; apart
      // from sync_pages, whose rows change with every delivery and should not rewrite them.
      await db.schema
        .createTable('sync_page_ids')
        .addColumn('run_id', 'integer', (c) => c.notNull())
        .addColumn('page', 'integer', (c) => c.notNull())
        .addColumn('ids', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('sync_page_ids_pk', ['run_id', 'page'])
        .execute();
    },
  };
}

import crypto from 'node:crypto';
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../database.js';

/**
 * The seams new surfaces plug into:
 * - deliveries have a channel ('webhook' for every existing one) and a lease token, and a delivery
 *   of a channel with a destination of its own (e-mail) has no connection;
 * - the e-mails of the old notifications table move into the outbox as 'email' deliveries;
 * - one schedules table: each cohort sync's next run moves there from cohort_syncs.next_run_at;
 * - sync_runs.stale marks the runs whose snapshot and pages the sweep may drop, so it no longer
 *   searches every run for them;
 * - each attempt in the log says why it was judged as it was (delivery_attempts.reason).
 */
export function channelsSchedules(dialect: Dialect): Migration {
  const idType = dialect === 'postgres' ? 'serial' : 'integer';
  const id = (c: any) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement());
  return {
    async up(db: Kysely<any>) {
      const now = Date.now();
      if (dialect === 'postgres') {
        await sql`alter table deliveries alter column connection_id drop not null`.execute(db);
        await sql`alter table deliveries add column channel text not null default 'webhook'`.execute(db);
        await sql`alter table deliveries add column lease_token text`.execute(db);
      } else {
        await rebuildSqliteDeliveries(db);
      }

      await db.schema.alterTable('delivery_attempts').addColumn('reason', 'text').execute();

      // E-mails move into the outbox: recipients and subject as the delivery's headers, the text as its body.
      const mails = await db.selectFrom('notifications').selectAll().orderBy('id').execute();
      for (const n of mails) {
        const recipients = (typeof n.recipients === 'string' ? JSON.parse(n.recipients) : n.recipients) as string[];
        const state = n.state === 'sent' ? 'succeeded' : n.state;
        await db
          .insertInto('deliveries')
          .values({
            project_id: n.project_id,
            channel: 'email',
            connection_id: null,
            webhook_id: `msg_${Date.now().toString(16).padStart(12, '0')}${crypto.randomBytes(8).toString('hex')}`,
            owner_kind: 'notice',
            owner_id: String(n.id),
            policy: 'email',
            content_type: 'text/plain; charset=utf-8',
            body: n.body,
            body_apart: 0,
            headers: JSON.stringify({ to: recipients.join(', '), subject: n.subject }),
            state,
            outcome: state === 'succeeded' ? 'delivered' : state === 'failed' ? 'exhausted' : null,
            attempts: n.attempts,
            round_attempts: n.attempts,
            next_attempt_at: n.next_attempt_at,
            last_error: n.last_error,
            created_at: n.created_at,
            updated_at: now,
            completed_at: n.sent_at ?? (state === 'failed' ? now : null),
          })
          .execute();
      }
      await db.schema.dropTable('notifications').execute();

      await db.schema
        .createTable('schedules')
        .addColumn('id', idType, id)
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('every_ms', 'bigint')
        .addColumn('cron', 'text')
        .addColumn('timezone', 'text')
        .addColumn('max_lateness_ms', 'bigint')
        .addColumn('next_run_at', 'bigint')
        .addColumn('lease_owner', 'text')
        .addColumn('lease_token', 'text')
        .addColumn('lease_expires_at', 'bigint')
        .addColumn('runs', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('missed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('last_started_at', 'bigint')
        .addColumn('last_finished_at', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('schedules_kind_key', ['kind', 'key'])
        .execute();
      // The claim's probe: due rows by time (unscheduled ones, next_run_at null, are never read).
      await db.schema.createIndex('schedules_due').on('schedules').columns(['next_run_at']).execute();

      const syncs = await db.selectFrom('cohort_syncs').select(['id', 'interval_ms', 'next_run_at']).execute();
      for (const s of syncs) {
        await db
          .insertInto('schedules')
          .values({ kind: 'cohort-sync', key: String(s.id), every_ms: s.interval_ms, next_run_at: s.next_run_at, created_at: now, updated_at: now })
          .execute();
      }
      await db.schema.dropIndex('cohort_syncs_due').execute();
      await db.schema.alterTable('cohort_syncs').dropColumn('next_run_at').execute();

      await db.schema.alterTable('sync_runs').addColumn('stale', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.createIndex('sync_runs_stale').on('sync_runs').column('id').where(sql.ref('stale'), '=', 1).execute();
      // What the old sweep would have found: finished runs that are neither a sync's base nor its current run.
      await sql`update sync_runs set stale = 1
        where state in ('succeeded', 'abandoned')
          and not exists (select 1 from cohort_syncs as s where s.base_run_id = sync_runs.id or s.current_run_id = sync_runs.id)`.execute(db);
    },
  };
}

/**
 * SQLite cannot drop a NOT NULL constraint: the table is made anew, rows copied, as its
 * documentation describes (foreign keys off for the swap, checked before the commit).
 */
async function rebuildSqliteDeliveries(db: Kysely<any>): Promise<void> {
  const columns = [
    'id', 'project_id', 'connection_id', 'webhook_id', 'owner_kind', 'owner_id', 'policy', 'content_type', 'body', 'body_apart', 'headers', 'state',
    'outcome', 'attempts', 'round_attempts', 'next_attempt_at', 'first_attempt_at', 'lease_owner', 'lease_expires_at', 'last_status', 'last_error',
    'created_at', 'updated_at', 'completed_at',
  ].join(', ');
  await sql`pragma foreign_keys = off`.execute(db);
  await sql`begin`.execute(db);
  try {
    await db.schema
      .createTable('deliveries_new')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
      .addColumn('channel', 'text', (c) => c.notNull().defaultTo('webhook'))
      .addColumn('connection_id', 'integer', (c) => c.references('connections.id'))
      .addColumn('webhook_id', 'text', (c) => c.notNull().unique())
      .addColumn('owner_kind', 'text', (c) => c.notNull())
      .addColumn('owner_id', 'text', (c) => c.notNull())
      .addColumn('policy', 'text', (c) => c.notNull())
      .addColumn('content_type', 'text', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('body_apart', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('headers', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('outcome', 'text')
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('round_attempts', 'integer', (c) => c.notNull())
      .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
      .addColumn('first_attempt_at', 'bigint')
      .addColumn('lease_owner', 'text')
      .addColumn('lease_token', 'text')
      .addColumn('lease_expires_at', 'bigint')
      .addColumn('last_status', 'integer')
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('completed_at', 'bigint')
      .execute();
    await sql`insert into deliveries_new (${sql.raw(columns)}) select ${sql.raw(columns)} from deliveries`.execute(db);
    await sql`drop table deliveries`.execute(db);
    await sql`alter table deliveries_new rename to deliveries`.execute(db);
    await db.schema.createIndex('deliveries_due').on('deliveries').columns(['connection_id', 'next_attempt_at', 'id']).where(sql.ref('state'), '=', 'pending').execute();
    await db.schema.createIndex('deliveries_by_project').on('deliveries').columns(['project_id', 'id']).execute();
    await db.schema.createIndex('deliveries_by_connection').on('deliveries').columns(['connection_id', 'id']).execute();
    await db.schema.createIndex('deliveries_by_owner').on('deliveries').columns(['owner_kind', 'owner_id', 'id']).execute();
    const broken = await sql`pragma foreign_key_check`.execute(db);
    if (broken.rows.length > 0) throw new Error(`rebuilding deliveries broke ${broken.rows.length} foreign keys`);
    await sql`commit`.execute(db);
  } catch (err) {
    await sql`rollback`.execute(db);
    throw err;
  } finally {
    await sql`pragma foreign_keys = on`.execute(db);
  }
}

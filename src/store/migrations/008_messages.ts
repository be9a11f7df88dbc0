import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../database.js';

/**
 * Webhook messages (Mixpanel's webhook campaigns):
 * - messages: whom to target (a cohort), where to post (a connection), when (a schedule);
 * - message_runs: each run of a schedule, and the one live run of an ASAP or as-met message;
 * - message_recipients: the ledger, one row per message and user: waiting, queued in a batch,
 *   sent (only a 200 makes it so), failed or dropped, with how often and when it was sent;
 * - message_batches: the requests of up to 50 users, each one delivery.
 */
export function messages(dialect: Dialect): Migration {
  const json = dialect === 'postgres' ? sql`jsonb` : sql`text`;
  const serial = (big = false) => (dialect === 'postgres' ? (big ? 'bigserial' : 'serial') : 'integer');
  const id = (c: any) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement());
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('messages')
        .addColumn('id', serial(), id)
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('cohort_id', 'integer', (c) => c.notNull())
        // 1: the cohort was made from the message's inline definition and goes with it.
        .addColumn('own_cohort', 'integer', (c) => c.notNull())
        .addColumn('connection_id', 'integer', (c) => c.notNull())
        .addColumn('schedule', json, (c) => c.notNull())
        // asap | scheduled | recurring | as_met: asap and as_met follow live membership.
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('properties', json)
        .addColumn('enabled', 'integer', (c) => c.notNull())
        // A live message's users matching when it started are queued once (0 until then).
        .addColumn('seeded', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('messages_by_project').on('messages').columns(['project_id', 'id']).execute();

      await db.schema
        .createTable('message_runs')
        .addColumn('id', serial(true), id)
        .addColumn('message_id', 'integer', (c) => c.notNull())
        // live | scheduled | recurring
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('planned_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .addColumn('users', 'bigint', (c) => c.notNull())
        .addColumn('sent', 'bigint', (c) => c.notNull())
        .addColumn('failed', 'bigint', (c) => c.notNull())
        .addColumn('dropped', 'bigint', (c) => c.notNull())
        // Users of this run waiting or queued: the run is finished when none are.
        .addColumn('outstanding', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('message_runs_by_message').on('message_runs').columns(['message_id', 'id']).execute();

      await db.schema
        .createTable('message_recipients')
        .addColumn('message_id', 'integer', (c) => c.notNull())
        .addColumn('distinct_id', 'text', (c) => c.notNull())
        // waiting | queued | sent | failed | dropped
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('run_id', 'bigint', (c) => c.notNull())
        .addColumn('batch_id', 'bigint')
        .addColumn('due_at', 'bigint', (c) => c.notNull())
        // Failed sends in a row (the backoff of live messages grows with it).
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('sends', 'integer', (c) => c.notNull())
        .addColumn('first_sent_at', 'bigint')
        .addColumn('last_sent_at', 'bigint')
        // The limit's period (a day, week or month in the message's time zone) and sends in it.
        .addColumn('period', 'text')
        .addColumn('period_sends', 'integer', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('message_recipients_pk', ['message_id', 'distinct_id'])
        .$call((t) => (dialect === 'sqlite' ? t.modifyEnd(sql`without rowid`) : t))
        .execute();
      await db.schema
        .createIndex('message_recipients_waiting')
        .on('message_recipients')
        .columns(['message_id', 'due_at', 'distinct_id'])
        .where(sql.ref('state'), '=', 'waiting')
        .execute();

      await db.schema
        .createTable('message_batches')
        .addColumn('id', serial(true), id)
        .addColumn('message_id', 'integer', (c) => c.notNull())
        .addColumn('delivery_id', 'bigint')
        // JSON text of the batch's distinct ids.
        .addColumn('user_ids', 'text', (c) => c.notNull())
        .addColumn('users', 'integer', (c) => c.notNull())
        // JSON text {run id: users}: the runs whose counters its ending moves.
        .addColumn('runs', 'text', (c) => c.notNull())
        // 1: its users wait on a backoff if it is not acknowledged (a live message); 0: the next run targets them.
        .addColumn('retry', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        // sent | failed
        .addColumn('outcome', 'text')
        .addColumn('status', 'integer')
        .addColumn('reason', 'text')
        .execute();
      await db.schema.createIndex('message_batches_by_message').on('message_batches').columns(['message_id', 'id']).execute();
      await db.schema.createIndex('message_batches_open').on('message_batches').column('message_id').where(sql.ref('finished_at'), 'is', null).execute();
    },
  };
}

import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../database.js';

/**
 * Cohort syncs (seed 002): a sync sends a cohort to a connection every interval; each run has a
 * session, a membership snapshot taken at its start (the base of the next run's diff once it
 * succeeded), and pages whose contents are fixed when the run starts, so a resumed run sends the
 * same pages under the same session. Also the e-mail outbox (notifications).
 */
export function cohortSyncs(dialect: Dialect): Migration {
  const json = dialect === 'postgres' ? sql`jsonb` : sql`text`;
  const id = (c: any) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement());
  const idType = dialect === 'postgres' ? 'serial' : 'integer';
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('cohort_syncs')
        .addColumn('id', idType, id)
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('cohort_id', 'integer', (c) => c.notNull().references('cohorts.id'))
        .addColumn('connection_id', 'integer', (c) => c.notNull().references('connections.id'))
        .addColumn('properties_to_export', json, (c) => c.notNull())
        // E-mail addresses told when the sync pauses (Mixpanel mails the users who set it up).
        .addColumn('owner_emails', json, (c) => c.notNull())
        // null: one time only
        .addColumn('interval_ms', 'bigint')
        // active | paused | done (a one-time sync that succeeded)
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('state_reason', 'text')
        .addColumn('next_run_at', 'bigint')
        // The last run that succeeded: its snapshot is the base of the next diff.
        .addColumn('base_run_id', 'integer')
        .addColumn('base_at', 'bigint')
        // The run in progress, failed or paused (resumed, not replaced, by the next run).
        .addColumn('current_run_id', 'integer')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('cohort_syncs_by_project').on('cohort_syncs').columns(['project_id', 'id']).execute();
      await db.schema.createIndex('cohort_syncs_due').on('cohort_syncs').columns(['state', 'next_run_at']).execute();

      await db.schema
        .createTable('sync_runs')
        .addColumn('id', idType, id)
        .addColumn('sync_id', 'integer', (c) => c.notNull().references('cohort_syncs.id'))
        .addColumn('session_id', 'text', (c) => c.notNull())
        // full | diff
        .addColumn('kind', 'text', (c) => c.notNull())
        // running | succeeded | failed | paused | abandoned
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('base_run_id', 'integer')
        .addColumn('total_pages', 'integer', (c) => c.notNull())
        .addColumn('pages_acked', 'integer', (c) => c.notNull())
        .addColumn('members', 'integer', (c) => c.notNull())
        .addColumn('members_added', 'integer', (c) => c.notNull())
        .addColumn('members_removed', 'integer', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .execute();
      await db.schema.createIndex('sync_runs_by_sync').on('sync_runs').columns(['sync_id', 'id']).execute();

      await db.schema
        .createTable('sync_snapshots')
        .addColumn('run_id', 'integer', (c) => c.notNull())
        .addColumn('distinct_id', 'text', (c) => c.notNull())
        // The member's fields as of the run's start: $email, $first_name, … and the exported properties.
        .addColumn('member', json, (c) => c.notNull())
        .addPrimaryKeyConstraint('sync_snapshots_pk', ['run_id', 'distinct_id'])
        .execute();

      await db.schema
        .createTable('sync_pages')
        .addColumn('run_id', 'integer', (c) => c.notNull())
        .addColumn('page', 'integer', (c) => c.notNull())
        // members | add_members | remove_members
        .addColumn('action', 'text', (c) => c.notNull())
        // The page holds the action's members from first_id (inclusive) to next_first_id (exclusive);
        // null first_id: an empty page.
        .addColumn('first_id', 'text')
        .addColumn('next_first_id', 'text')
        .addColumn('member_count', 'integer', (c) => c.notNull())
        // pending (not sent yet) | sent | acked
        .addColumn('state', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('sync_pages_pk', ['run_id', 'page'])
        .execute();

      // E-mails to send, written in the transaction of what they tell (an outbox, like deliveries).
      await db.schema
        .createTable('notifications')
        .addColumn('id', idType, id)
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('recipients', json, (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        // pending | sent | failed
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('sent_at', 'bigint')
        .execute();
      await db.schema.createIndex('notifications_due').on('notifications').columns(['state', 'next_attempt_at']).execute();
    },
  };
}

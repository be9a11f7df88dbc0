import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../database.js';

/**
 * Event subscriptions and live cohort membership:
 * - subscriptions: which event types a project's subscribers want, on which channels;
 * - webhook_events: every event cohortcast emits (its event_id is what receivers de-duplicate on),
 *   written in the producer's transaction and fanned out to the subscriptions' deliveries after;
 * - cohort_watches and cohort_members: the cohorts kept up to date live, and their members;
 * - dirty_profiles: profiles ingestion touched, waiting to be evaluated against the watched cohorts;
 * - deliveries.event_id: the event a subscription's delivery tells of.
 */
export function subscriptions(dialect: Dialect): Migration {
  const json = dialect === 'postgres' ? sql`jsonb` : sql`text`;
  const id = (c: any) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement());
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('subscriptions')
        .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', id)
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('event_types', json, (c) => c.notNull())
        .addColumn('cohort_ids', json, (c) => c.notNull())
        .addColumn('event_filter', json)
        .addColumn('channels', json, (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('subscriptions_by_project').on('subscriptions').columns(['project_id', 'id']).execute();

      await db.schema
        .createTable('webhook_events')
        .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) => c.primaryKey())
        .addColumn('event_id', 'text', (c) => c.notNull().unique())
        .addColumn('project_id', 'integer', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        // 0 until its deliveries are made (the fan-out), then 1.
        .addColumn('fanned_out', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('webhook_events_pending').on('webhook_events').column('id').where(sql.ref('fanned_out'), '=', 0).execute();
      await db.schema.createIndex('webhook_events_by_project').on('webhook_events').columns(['project_id', 'id']).execute();

      await db.schema
        .createTable('cohort_watches')
        .addColumn('cohort_id', 'integer', (c) => c.primaryKey())
        .addColumn('project_id', 'integer', (c) => c.notNull())
        // baseline (its members not recorded yet) | live
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('since', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('cohort_members')
        .addColumn('cohort_id', 'integer', (c) => c.notNull())
        .addColumn('distinct_id', 'text', (c) => c.notNull())
        .addColumn('since', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('cohort_members_pk', ['cohort_id', 'distinct_id'])
        .$call((t) => (dialect === 'sqlite' ? t.modifyEnd(sql`without rowid`) : t))
        .execute();

      await db.schema
        .createTable('dirty_profiles')
        .addColumn('project_id', 'integer', (c) => c.notNull())
        .addColumn('distinct_id', 'text', (c) => c.notNull())
        .addColumn('marked_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('dirty_profiles_pk', ['project_id', 'distinct_id'])
        .execute();

      // The event a delivery tells of, so a receiver's event_id finds every delivery of it
      // (null for the rest: the partial index costs them nothing).
      await db.schema.alterTable('deliveries').addColumn('event_id', 'text').execute();
      await db.schema.createIndex('deliveries_by_event').on('deliveries').columns(['event_id', 'id']).where(sql.ref('event_id'), 'is not', null).execute();
    },
  };
}

import type { Kysely, Migration } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../database.js';

/**
 * Reports and alerts (seed 000):
 * - reports: a saved insights or funnels query, the metric an alert watches;
 * - alerts: a condition on a report's series, how often it may notify, when, and on which channels;
 * - alert_checks: each check of an alert (per segment): the value, what it was compared with,
 *   whether it crossed, and whether that was notified (the alert's history).
 */
export function reportsAlerts(dialect: Dialect): Migration {
  const json = dialect === 'postgres' ? sql`jsonb` : sql`text`;
  const serial = (big = false) => (dialect === 'postgres' ? (big ? 'bigserial' : 'serial') : 'integer');
  const id = (c: any) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement());
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('reports')
        .addColumn('id', serial(), id)
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('query', json, (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('reports_by_project').on('reports').columns(['project_id', 'id']).execute();

      await db.schema
        .createTable('alerts')
        .addColumn('id', serial(), id)
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('report_id', 'integer', (c) => c.notNull())
        .addColumn('condition', json, (c) => c.notNull())
        // null: the report's one series; '$any': any segment; else one segment's value.
        .addColumn('segment', 'text')
        .addColumn('frequency', 'text', (c) => c.notNull())
        .addColumn('windows', json)
        .addColumn('channels', json, (c) => c.notNull())
        .addColumn('creator', 'text')
        .addColumn('creator_email', 'text')
        // active | invalid (its report can no longer be computed)
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('state_reason', 'text')
        // After it notified: not checked again before this (the start of the next frequency period).
        .addColumn('quiet_until', 'bigint')
        // The end of the last bucket checked: a bucket is checked once.
        .addColumn('checked_to', 'bigint')
        .addColumn('last_fired_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('alerts_by_project').on('alerts').columns(['project_id', 'id']).execute();
      await db.schema.createIndex('alerts_by_report').on('alerts').column('report_id').execute();

      await db.schema
        .createTable('alert_checks')
        .addColumn('id', serial(true), id)
        .addColumn('alert_id', 'integer', (c) => c.notNull())
        .addColumn('checked_at', 'bigint', (c) => c.notNull())
        // The bucket checked: its start and end.
        .addColumn('bucket_from', 'bigint', (c) => c.notNull())
        .addColumn('bucket_to', 'bigint', (c) => c.notNull())
        .addColumn('segment', 'text', (c) => c.notNull())
        .addColumn('value', 'double precision')
        // What it was compared with: the previous bucket, or the anomaly band's bounds.
        .addColumn('baseline', 'double precision')
        .addColumn('low', 'double precision')
        .addColumn('high', 'double precision')
        .addColumn('crossed', 'integer', (c) => c.notNull())
        .addColumn('notified', 'integer', (c) => c.notNull())
        .addColumn('note', 'text')
        .execute();
      await db.schema.createIndex('alert_checks_by_alert').on('alert_checks').columns(['alert_id', 'id']).execute();
    },
  };
}

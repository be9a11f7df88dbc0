import { sql, type CreateTableBuilder, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../database.js';

/** Projects, events, the per-user daily event counts, profiles, group profiles and aliases. */
export function foundation(dialect: Dialect): Migration {
  const json = dialect === 'postgres' ? sql`jsonb` : sql`text`;
  // SQLite: INTEGER PRIMARY KEY (the rowid; AUTOINCREMENT only for projects, whose ids must never
  // be reused, as it costs a sqlite_sequence update per insert); PostgreSQL: serial types.
  const withId = (table: CreateTableBuilder<string, never>, type: 'serial' | 'bigserial') =>
    dialect === 'postgres'
      ? table.addColumn('id', type, (c) => c.primaryKey())
      : table.addColumn('id', 'integer', (c) => (type === 'serial' ? c.primaryKey().autoIncrement() : c.primaryKey()));
  return {
    async up(db: Kysely<any>) {
      await withId(db.schema.createTable('projects'), 'serial')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token', 'text', (c) => c.notNull().unique())
        .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await withId(db.schema.createTable('events'), 'bigserial')
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('distinct_id', 'text', (c) => c.notNull())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('insert_id', 'text')
        .addColumn('dedup_key', 'text', (c) => c.notNull())
        .addColumn('properties', json, (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .execute();
      // The one secondary index: time leads, so live traffic appends near its right edge instead of
      // dirtying random pages (a per-user index cost more than half of the ingestion time); it
      // serves de-duplication (time is part of the identity) and time-range reads alike.
      await db.schema.createIndex('events_dedup').on('events').columns(['project_id', 'time', 'dedup_key']).unique().execute();

      await db.schema
        .createTable('event_daily_counts')
        .addColumn('project_id', 'integer', (c) => c.notNull())
        .addColumn('distinct_id', 'text', (c) => c.notNull())
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('day', 'integer', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('event_daily_counts_pk', ['project_id', 'distinct_id', 'event', 'day'])
        // One B-tree, not a rowid table plus its key index: an upsert touches half the pages.
        .$call((t) => (dialect === 'sqlite' ? t.modifyEnd(sql`without rowid`) : t))
        .execute();
      // Behavioural cohorts scan one event over a window of days, across users.
      await db.schema
        .createIndex('event_daily_counts_by_event')
        .on('event_daily_counts')
        .columns(['project_id', 'event', 'day', 'distinct_id'])
        .execute();

      await db.schema
        .createTable('profiles')
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('distinct_id', 'text', (c) => c.notNull())
        .addColumn('properties', json, (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('profiles_pk', ['project_id', 'distinct_id'])
        .execute();

      await db.schema
        .createTable('group_profiles')
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('group_key', 'text', (c) => c.notNull())
        .addColumn('group_id', 'text', (c) => c.notNull())
        .addColumn('properties', json, (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('group_profiles_pk', ['project_id', 'group_key', 'group_id'])
        .execute();

      await db.schema
        .createTable('aliases')
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('alias', 'text', (c) => c.notNull())
        .addColumn('distinct_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('aliases_pk', ['project_id', 'alias'])
        .execute();
    },
  };
}

import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../database.js';

/** Cohorts: a name, a description and a definition (validated JSON, see cohorts/definition.ts). */
export function cohorts(dialect: Dialect): Migration {
  const json = dialect === 'postgres' ? sql`jsonb` : sql`text`;
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('cohorts')
        // Cohort ids are handed to receivers (mixpanel_cohort_id) and must never be reused.
        .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('definition', json, (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('cohorts_by_project').on('cohorts').columns(['project_id', 'id']).execute();
    },
  };
}

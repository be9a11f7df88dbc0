import type { Definition } from '../cohorts/definition.js';
import { compileDefinition } from './cohort-sql.js';
import type { Store } from './database.js';
import { profilePropertiesText } from './json-sql.js';
import type { Kysely, Transaction } from 'kysely';
import { readJson, type Database } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export interface CohortRecord {
  id: number;
  projectId: number;
  name: string;
  description: string;
  definition: Definition;
  createdAt: number;
  updatedAt: number;
}

type Row = { id: number; project_id: number; name: string; description: string; definition: unknown; created_at: number; updated_at: number };
const toRecord = (r: Row): CohortRecord => ({
  id: r.id,
  projectId: r.project_id,
  name: r.name,
  description: r.description,
  definition: readJson<Definition>(r.definition),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface CohortFields {
  name: string;
  description: string;
  definition: Definition;
}

export async function insertCohort(db: Db, projectId: number, f: CohortFields, now: number): Promise<CohortRecord> {
  const row = await db
    .insertInto('cohorts')
    .values({ project_id: projectId, name: f.name, description: f.description, definition: JSON.stringify(f.definition), created_at: now, updated_at: now })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toRecord(row);
}

export async function getCohort(store: Store, projectId: number, id: number): Promise<CohortRecord | undefined> {
  const row = await store.db.selectFrom('cohorts').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
  return row && toRecord(row);
}

export async function listCohorts(store: Store, projectId: number, after: number | undefined, limit: number): Promise<CohortRecord[]> {
  let q = store.db.selectFrom('cohorts').selectAll().where('project_id', '=', projectId);
  if (after !== undefined) q = q.where('id', '>', after);
  return (await q.orderBy('id').limit(limit).execute()).map(toRecord);
}

export async function updateCohort(db: Db, projectId: number, id: number, f: Partial<CohortFields>, now: number): Promise<CohortRecord | undefined> {
  const row = await db
    .updateTable('cohorts')
    .set({
      ...(f.name !== undefined ? { name: f.name } : {}),
      ...(f.description !== undefined ? { description: f.description } : {}),
      ...(f.definition !== undefined ? { definition: JSON.stringify(f.definition) } : {}),
      updated_at: now,
    })
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row && toRecord(row);
}

export async function deleteCohort(db: Db, projectId: number, id: number): Promise<boolean> {
  const res = await db.deleteFrom('cohorts').where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

/** Every cohort of the project with its definition: reference checks walk this graph. */
export async function cohortDefinitions(db: Kysely<Database> | Transaction<Database>, projectId: number): Promise<Map<number, Definition>> {
  const rows = await db.selectFrom('cohorts').select(['id', 'definition']).where('project_id', '=', projectId).execute();
  return new Map(rows.map((r) => [r.id, readJson<Definition>(r.definition)]));
}

export interface Evaluation {
  projectId: number;
  definition: Definition;
  /** The definitions of every cohort it names, directly or not. */
  cohorts: ReadonlyMap<number, Definition>;
  now: number;
}

/** A page of the cohort's members (profiles), in distinct_id order, after `after`. */
export async function cohortMembers(store: Store, e: Evaluation, after: string | undefined, limit: number) {
  const condition = compileDefinition(e.definition, { dialect: store.dialect, projectId: e.projectId, now: e.now, cohorts: e.cohorts });
  let q = store.db.selectFrom('profiles as p').select(['p.distinct_id', profilePropertiesText(store.dialect, 'p.properties').as('properties')]).where('p.project_id', '=', e.projectId).where(condition);
  if (after !== undefined) q = q.where('p.distinct_id', '>', after);
  const rows = await q.orderBy('p.distinct_id').limit(limit).execute();
  return rows.map((r) => ({ distinctId: r.distinct_id, properties: readJson(r.properties) }));
}

export async function cohortSize(store: Store, e: Evaluation): Promise<number> {
  const condition = compileDefinition(e.definition, { dialect: store.dialect, projectId: e.projectId, now: e.now, cohorts: e.cohorts });
  const row = await store.db
    .selectFrom('profiles as p')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('p.project_id', '=', e.projectId)
    .where(condition)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** A cohort's name and description (what a sync's pages and notices carry). */
export async function cohortLabel(db: Kysely<Database> | Transaction<Database>, id: number): Promise<{ name: string; description: string } | undefined> {
  return db.selectFrom('cohorts').select(['name', 'description']).where('id', '=', id).executeTakeFirst();
}

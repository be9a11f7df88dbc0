import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';
import type { Store } from './database.js';

export interface ProjectRow {
  id: number;
  name: string;
  token: string;
}

export async function insertProject(
  store: Store,
  project: { name: string; token: string; secretHash: string; createdAt: number },
): Promise<ProjectRow> {
  return store.db
    .insertInto('projects')
    .values({ name: project.name, token: project.token, secret_hash: project.secretHash, created_at: project.createdAt })
    .returning(['id', 'name', 'token'])
    .executeTakeFirstOrThrow();
}

export async function findProjectByToken(store: Store, token: string): Promise<ProjectRow | undefined> {
  return store.db.selectFrom('projects').select(['id', 'name', 'token']).where('token', '=', token).executeTakeFirst();
}

export async function findProjectBySecretHash(store: Store, secretHash: string): Promise<ProjectRow | undefined> {
  return store.db
    .selectFrom('projects')
    .select(['id', 'name', 'token'])
    .where('secret_hash', '=', secretHash)
    .executeTakeFirst();
}

export async function listProjects(store: Store): Promise<ProjectRow[]> {
  return store.db.selectFrom('projects').select(['id', 'name', 'token']).orderBy('id').execute();
}

export async function projectName(db: Kysely<Database> | Transaction<Database>, id: number): Promise<string | undefined> {
  return (await db.selectFrom('projects').select('name').where('id', '=', id).executeTakeFirst())?.name;
}

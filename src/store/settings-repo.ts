import type { Kysely, Transaction } from 'kysely';
import type { Store } from './database.js';
import type { Database } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Service-wide values (settings). Remembers `value` under `name` unless a value is there already,
 * and answers the one stored: the first process to start decides, later ones compare.
 */
export async function rememberSetting(store: Store, name: string, value: string): Promise<string> {
  await store.db.insertInto('settings').values({ name, value }).onConflict((oc) => oc.column('name').doNothing()).execute();
  const stored = await store.db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return stored.value;
}

export async function readSetting(db: Db, name: string): Promise<string | undefined> {
  return (await db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst())?.value;
}

export async function writeSetting(db: Db, name: string, value: string): Promise<void> {
  await db.insertInto('settings').values({ name, value }).onConflict((oc) => oc.column('name').doUpdateSet({ value })).execute();
}

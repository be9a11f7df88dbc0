import type { Store } from './database.js';

/**
 * Service-wide values (settings). Remembers `value` under `name` unless a value is there already,
 * and answers the one stored: the first process to start decides, later ones compare.
 */
export async function rememberSetting(store: Store, name: string, value: string): Promise<string> {
  await store.db.insertInto('settings').values({ name, value }).onConflict((oc) => oc.column('name').doNothing()).execute();
  const stored = await store.db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return stored.value;
}

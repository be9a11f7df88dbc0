import { sql, type Kysely } from 'kysely';
import type { Store } from './database.js';
import type { Database } from './schema.js';

/**
 * A read-then-write transaction. On SQLite it begins IMMEDIATE: the writer thread is a second
 * writer, and a deferred transaction that read before it committed could not upgrade to a
 * write (SQLITE_BUSY_SNAPSHOT); IMMEDIATE waits for the lock up front instead.
 */
export async function writeTransaction<T>(store: Store, run: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (store.dialect === 'postgres') return store.db.transaction().execute(run);
  return store.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const result = await run(conn);
      await sql`commit`.execute(conn);
      return result;
    } catch (err) {
      await sql`rollback`.execute(conn);
      throw err;
    }
  });
}

import type BetterSqlite3 from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';

/**
 * better-sqlite3 for Kysely with prepared statements kept by SQL text. Kysely prepares every
 * statement on every call, and preparing costs more than running a small statement; the queries
 * of a running service are a small fixed set, so a bounded cache holds them all.
 */
export function withStatementCache(raw: BetterSqlite3.Database, max = 500): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => raw.close(),
    prepare(sql: string) {
      const hit = cache.get(sql);
      // A statement still being iterated (a streamed query) cannot run again until it is done.
      if (hit && !hit.busy) {
        cache.delete(sql);
        cache.set(sql, hit);
        return hit;
      }
      const statement = raw.prepare(sql);
      if (hit) return statement;
      cache.set(sql, statement);
      if (cache.size > max) cache.delete(cache.keys().next().value!);
      return statement;
    },
  };
}

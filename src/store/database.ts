import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import type { Config } from '../config.js';
import type { Database } from './schema.js';
import { startCheckpointer } from './sqlite-checkpointer.js';
import { withStatementCache } from './sqlite-statements.js';
import { PREPARED_PREFIX } from './prepared-statements.js';

export type Dialect = 'sqlite' | 'postgres';

interface StoreBase {
  db: Kysely<Database>;
  /** Where the data lives, for logs (never includes a password). */
  location: string;
  close(): Promise<void>;
}
export interface SqliteStore extends StoreBase {
  dialect: 'sqlite';
  /** The one connection Kysely also uses; touch it only inside `db.connection()`. */
  raw: BetterSqlite3.Database;
  /** Ingestion requests that may share one transaction (group commit). */
  maxGroupedRequests: number;
}
export interface PostgresStore extends StoreBase {
  dialect: 'postgres';
  pool: pg.Pool;
}
export type Store = SqliteStore | PostgresStore;

/** Answers when the database does: for health checks. */
export async function pingStore(store: Store): Promise<void> {
  await sql`select 1`.execute(store.db);
}

function sqliteFile(dataDir: string): string {
  return path.join(dataDir, 'cohortcast.db');
}

function openSqlite(config: Config): SqliteStore {
  // Events, profiles and connection headers are for this user alone: a folder and files made
  // here are 0700 and 0600 (SQLite gives its -wal and -shm files the database file's mode).
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const file = sqliteFile(config.dataDir);
  if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
  const raw = new BetterSqlite3(file);
  raw.pragma('journal_mode = WAL');
  raw.pragma(`synchronous = ${config.sqlite.synchronous}`);
  raw.pragma(`busy_timeout = ${config.sqlite.busyTimeoutMs}`);
  raw.pragma('foreign_keys = ON');
  raw.pragma('cache_size = -65536');
  raw.pragma('temp_store = MEMORY');
  // Checkpoints run on a thread of their own, never inside a commit.
  raw.pragma('wal_autocheckpoint = 0');
  // The WAL restarts from its beginning after a complete checkpoint; cap what it keeps on disk.
  raw.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
  const checkpointer = startCheckpointer(raw, { file, ...config.sqlite });
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  return {
    dialect: 'sqlite',
    db,
    raw,
    location: file,
    maxGroupedRequests: config.sqlite.maxGroupedRequests,
    // Kysely's destroy closes the better-sqlite3 handle it was given.
    close: async () => {
      await checkpointer.stop();
      await db.destroy();
    },
  };
}

// int8 (counts, ids, millisecond times) as numbers: every value we store fits in 2^53.
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparsable url)';
  }
}

/** Runs the statements marked with PREPARED_PREFIX (prepared-statements.ts) as named prepared statements. */
class PreparingClient extends pg.Client {
  override query(...args: unknown[]): any {
    const [text, values] = args;
    if (typeof text === 'string' && text.startsWith(PREPARED_PREFIX) && !(typeof values === 'function')) {
      const name = text.slice(PREPARED_PREFIX.length, text.indexOf('\n'));
      return super.query({ name, text, values: values as unknown[] | undefined });
    }
    return (super.query as (...a: unknown[]) => unknown)(...args);
  }
}

function openPostgres(config: Config, url: string): PostgresStore {
  const pool = new pg.Pool({
    Client: PreparingClient,
    connectionString: url,
    max: config.postgres.poolSize,
    types: pgTypes,
    statement_timeout: config.postgres.statementTimeoutMs,
  });
  // An idle client losing its server must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { dialect: 'postgres', db, pool, location: redactUrl(url), close: () => db.destroy() };
}

export function openStore(config: Config): Store {
  return config.databaseUrl ? openPostgres(config, config.databaseUrl) : openSqlite(config);
}

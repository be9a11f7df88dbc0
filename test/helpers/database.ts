import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config.js';

/**
 * The suite runs on SQLite by default and on PostgreSQL when COHORTCAST_TEST_DATABASE_URL
 * names a server: every call gets a database of its own, dropped by `cleanup`.
 */
export const testDatabaseUrl = process.env.COHORTCAST_TEST_DATABASE_URL || undefined;
export const dialectUnderTest = testDatabaseUrl ? 'postgres' : 'sqlite';

export interface TestDatabase {
  /** Config pointing at the fresh database, listening on 127.0.0.1 with a free port. */
  config: Config;
  /** Environment that points a spawned `cohortcast` at the same database. */
  env: Record<string, string>;
  /** Command-line flags that point a spawned `cohortcast` at the same database. */
  args: string[];
  cleanup(): Promise<void>;
}

export async function createTestDatabase(env: Record<string, string> = {}): Promise<TestDatabase> {
  // One sealing key per test database, as every process sharing a database must use the same.
  const baseEnv = { COHORTCAST_LOG_LEVEL: 'warn', COHORTCAST_SECRET_KEY: crypto.randomBytes(32).toString('base64'), ...env };
  if (testDatabaseUrl) {
    const name = `cc_test_${crypto.randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: testDatabaseUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const url = new URL(testDatabaseUrl);
    url.pathname = `/${name}`;
    const databaseUrl = url.toString();
    return {
      config: loadConfig({ port: 0, databaseUrl }, { ...baseEnv, COHORTCAST_PG_POOL_SIZE: '4' }),
      env: { ...baseEnv, DATABASE_URL: databaseUrl },
      args: [],
      async cleanup() {
        const c = new pg.Client({ connectionString: testDatabaseUrl });
        await c.connect();
        await c.query(`drop database if exists ${name} with (force)`);
        await c.end();
      },
    };
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-test-'));
  return {
    config: loadConfig({ port: 0, dataDir }, baseEnv),
    env: { ...baseEnv, DATABASE_URL: '' },
    args: ['--data-dir', dataDir],
    async cleanup() {
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

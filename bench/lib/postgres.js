// PostgreSQL for bench/ingest.js and bench/delivery.js: the same server (BENCH_DATABASE_URL or a
// throwaway one) and the same fresh, dropped-afterwards databases, so both measure the same setup.
// What they start is undone by the benchmark's cleanup() (see ./processes.js).
import path from 'node:path';
import pg from 'pg';
import { freePort, log, onCleanup, ROOT, run } from './processes.js';

/** A PostgreSQL admin URL: BENCH_DATABASE_URL, else a throwaway server from .ci/start-postgres. */
export async function postgresAdminUrl() {
  if (process.env.BENCH_DATABASE_URL) return { url: process.env.BENCH_DATABASE_URL, source: 'BENCH_DATABASE_URL' };
  // Durable settings (fsync on), unlike the test suite's throwaway server: we measure real commits.
  const env = { ...process.env, PGPORT: String(await freePort()), COHORTCAST_PG_DURABLE: '1' };
  const url = (await run(path.join(ROOT, '.ci', 'start-postgres'), [], { env, timeoutMs: 600_000 })).trim().split('\n').pop();
  const port = new URL(url).port;
  onCleanup(async () => {
    await run(path.join(ROOT, '.ci', 'stop-postgres'), [port], { timeoutMs: 60_000 }).catch((err) => log(err.message));
    log('stopped the PostgreSQL started by .ci/start-postgres');
  });
  return { url, source: `.ci/start-postgres on port ${port} (fsync on)` };
}

/**
 * Creates a database cohortcast_bench_[TAG_]PID_TIME in `adminUrl` and returns its URL; it is
 * dropped at cleanup unless `keep` (BENCH_KEEP=1).
 */
export async function freshDatabase(adminUrl, { tag, keep = false } = {}) {
  const name = `cohortcast_bench_${tag ? `${tag}_` : ''}${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  if (!keep) {
    onCleanup(async () => {
      const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
      await c.connect();
      try {
        // WITH (FORCE) needs PostgreSQL 13; whatever used the database has stopped anyway.
        await c.query(`drop database if exists "${name}" with (force)`).catch(() => c.query(`drop database if exists "${name}"`));
      } finally {
        await c.end();
      }
    });
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * postgresAdminUrl(), or undefined when there is no BENCH_DATABASE_URL and .ci/start-postgres failed:
 * then the benchmark skips its PostgreSQL `what` ("PostgreSQL run(s)"), with a note that says why.
 */
export async function postgresAdminUrlOrSkip(notes, what) {
  try {
    return await postgresAdminUrl();
  } catch (err) {
    const lines = err.message.split('\n').map((l) => l.trim()).filter(Boolean);
    notes.push(`${what} SKIPPED: no BENCH_DATABASE_URL and .ci/start-postgres failed (${lines.at(-1) ?? 'unknown error'})`);
    log(notes.at(-1));
    return undefined;
  }
}

import { sql } from 'kysely';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject as createProjectIn } from '../../src/projects/projects.js';
import { openStore, type Store } from '../../src/store/database.js';
import { migrationNames } from '../../src/store/migrate.js';
import { createProjectWithCli, killAllCliChildren, startCliServer, type CliProject, type CliServer } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';

/**
 * Two `cohortcast serve` processes on one PostgreSQL database, as behind a load balancer:
 * no lost updates, no duplicate events, each sees what the other wrote, and both can
 * start at the same instant against an empty database.
 */

const databases: TestDatabase[] = [];

/** Spawns `cohortcast serve` on `db` at once; resolves when it serves (bounded). */
const startServer = (db: TestDatabase, env: Record<string, string> = {}, timeoutMs?: number): Promise<CliServer> =>
  startCliServer(db.args, { ...db.env, ...env }, timeoutMs);

async function post(url: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.statusCode, text: await res.body.text() };
}

async function get<T>(url: string, secret: string): Promise<{ status: number; body: T }> {
  const res = await request(url, { headers: { authorization: `Bearer ${secret}` }, signal: AbortSignal.timeout(15_000) });
  return { status: res.statusCode, body: (await res.body.json()) as T };
}

/** Runs tasks with at most `limit` at a time. */
async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let i = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (i < tasks.length) {
        const k = i++;
        results[k] = await tasks[k]!();
      }
    }),
  );
  return results;
}

afterAll(async () => {
  killAllCliChildren();
  await Promise.all(databases.map((db) => db.cleanup()));
});

describe.runIf(dialectUnderTest === 'postgres')('two serve processes on one PostgreSQL database', () => {
  let db: TestDatabase;
  let store: Store;
  let project: CliProject;
  let a: CliServer;
  let b: CliServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    databases.push(db);
    project = await createProjectWithCli('Two processes', db.args, db.env);
    [a, b] = await Promise.all([startServer(db), startServer(db)]);
    store = openStore(db.config);
  });
  afterAll(async () => {
    await store?.close();
  });

  it('both answer /healthz on the same database', async () => {
    for (const s of [a, b]) {
      const res = await request(`${s.url}/healthz`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ status: 'ok', database: 'postgres' });
    }
    expect(a.url).not.toBe(b.url);
  });

  it('loses no update when both apply $add, $union and $append to the same profiles concurrently', async () => {
    const ids = ['p-0', 'p-1', 'p-2', 'p-3'];
    const total = 200;
    // Request k goes to profile k mod 4, through A and B in turn for each profile.
    const viaA = (k: number) => Math.floor(k / ids.length) % 2 === 0;
    const tasks = Array.from({ length: total }, (_, k) => () => {
      const via = viaA(k) ? a : b;
      const id = ids[k % ids.length]!;
      return post(`${via.url}/engage`, {
        $token: project.token,
        $distinct_id: id,
        $add: { n: 1, [via === a ? 'viaA' : 'viaB']: 1 },
        $union: { seen: [`k${k}`] },
        $append: { order: k },
      });
    });
    const replies = await pool(tasks, 24);
    expect(replies.filter((r) => r.status !== 200 || r.text !== '1')).toEqual([]);

    let sum = 0;
    for (const [i, id] of ids.entries()) {
      const mine = Array.from({ length: total }, (_, k) => k).filter((k) => k % ids.length === i);
      // Read each profile through both processes: they agree, and nothing was lost.
      const [ra, rb] = await Promise.all([a, b].map((s) => get<{ $properties: Record<string, unknown> }>(`${s.url}/api/v1/profiles/${id}`, project.secret)));
      expect(ra!.status).toBe(200);
      expect(rb!.body).toEqual(ra!.body);
      const props = ra!.body.$properties;
      expect(props.n).toBe(mine.length);
      expect(props.viaA).toBe(mine.filter(viaA).length);
      expect(props.viaB).toBe(mine.filter((k) => !viaA(k)).length);
      expect([...(props.seen as string[])].sort()).toEqual(mine.map((k) => `k${k}`).sort());
      expect([...(props.order as number[])].sort((x, y) => x - y)).toEqual(mine);
      sum += props.n as number;
    }
    expect(sum).toBe(total);
  });

  it('stores events sent to both exactly once, including retries through the other process', async () => {
    const events = Array.from({ length: 200 }, (_, i) => ({
      event: 'Two',
      properties: { token: project.token, distinct_id: `u${i % 7}`, time: 1_700_000_000 + i, $insert_id: `two-${i}` },
    }));
    // Batches of 10 alternate between the processes; then every batch goes again through the other one.
    const batches = Array.from({ length: 20 }, (_, j) => events.slice(j * 10, j * 10 + 10));
    const send = (round: number) =>
      pool(
        batches.map((batch, j) => () => post(`${(j + round) % 2 === 0 ? a.url : b.url}/track`, batch)),
        10,
      );
    for (const round of [0, 1]) {
      const replies = await send(round);
      expect(replies.every((r) => r.status === 200 && r.text === '1')).toBe(true);
    }
    const row = await store.db
      .selectFrom('events')
      .select([sql<number>`count(*)`.as('all'), sql<number>`count(distinct insert_id)`.as('distinct')])
      .where('event', '=', 'Two')
      .executeTakeFirstOrThrow();
    expect({ all: Number(row.all), distinct: Number(row.distinct) }).toEqual({ all: 200, distinct: 200 });
    for (const s of [a, b]) {
      const res = await get<{ results: unknown[] }>(`${s.url}/api/v1/events?event=Two&limit=1000`, project.secret);
      expect(res.body.results).toHaveLength(200);
    }
    const counted = await store.db
      .selectFrom('event_daily_counts')
      .select(sql<number>`sum(count)`.as('n'))
      .where('event', '=', 'Two')
      .executeTakeFirstOrThrow();
    expect(Number(counted.n)).toBe(200);
  });

  it('each process sees at once what was written through the other', async () => {
    for (const [writer, reader] of [
      [a, b],
      [b, a],
    ] as const) {
      const tag = `seen-${writer === a ? 'a' : 'b'}-${Date.now()}`;
      expect((await post(`${writer.url}/track`, { event: tag, properties: { token: project.token, distinct_id: tag } })).text).toBe('1');
      expect((await post(`${writer.url}/engage`, { $token: project.token, $distinct_id: tag, $set: { tag } })).text).toBe('1');
      const events = await get<{ results: { distinct_id: string }[] }>(`${reader.url}/api/v1/events?event=${tag}`, project.secret);
      expect(events.body.results.map((e) => e.distinct_id)).toEqual([tag]);
      const profile = await get<{ $properties: Record<string, unknown> }>(`${reader.url}/api/v1/profiles/${tag}`, project.secret);
      expect(profile.status).toBe(200);
      expect(profile.body.$properties.tag).toBe(tag);
    }
  });

  it('both accept a project created by another process at once', async () => {
    // Both have looked up (and not found) an unknown token first.
    for (const s of [a, b]) {
      const res = await post(`${s.url}/track?verbose=1`, { event: 'x', properties: { token: '0123456789abcdef0123456789abcdef', distinct_id: 'x' } });
      expect(res.status).toBe(401);
    }
    const late = await createProjectIn(store, 'Late');
    for (const s of [a, b]) {
      expect((await post(`${s.url}/track`, { event: 'Late', properties: { token: late.token, distinct_id: 'x' } })).text).toBe('1');
      const res = await get<{ results: unknown[] }>(`${s.url}/api/v1/events?event=Late`, late.secret);
      expect(res.status).toBe(200);
    }
    const res = await get<{ results: unknown[] }>(`${a.url}/api/v1/events?event=Late`, late.secret);
    expect(res.body.results).toHaveLength(2);
  });

  it('two processes started at the same instant on an empty database both migrate and come up', async () => {
    const fresh = await createTestDatabase();
    databases.push(fresh);
    const pair = await Promise.all([startServer(fresh), startServer(fresh)]);
    const check = openStore(fresh.config);
    try {
      // The schema was created once, and both processes serve it.
      const migrations = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(check.db);
      expect(migrations.rows.map((r) => r.name)).toEqual(migrationNames);
      expect(migrationNames[0]).toBe('001_foundation');
      const p = await createProjectIn(check, 'Fresh');
      for (const server of pair) {
        const res = await request(`${server.url}/healthz`);
        expect(res.statusCode).toBe(200);
        await res.body.dump();
        expect((await post(`${server.url}/track`, { event: 'Fresh', properties: { token: p.token, distinct_id: 'x' } })).text).toBe('1');
      }
    } finally {
      await check.close();
    }
    for (const server of pair) {
      server.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
    }
  });

  it('a process with a pool of one PostgreSQL connection migrates and comes up', async () => {
    const fresh = await createTestDatabase();
    databases.push(fresh);
    const server = await startServer(fresh, { COHORTCAST_PG_POOL_SIZE: '1' }, 6000);
    const res = await request(`${server.url}/healthz`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });
});

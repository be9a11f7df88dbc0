import { sql } from 'kysely';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { createProjectWithCli, killAllCliChildren, startCliServer } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';

/**
 * Crash safety of the real CLI: /import batches stream in from several senders, the server
 * is killed with SIGKILL mid-stream, restarted on the same database, and the client retries
 * what was not acknowledged. Every acknowledged event must be stored, and nothing twice.
 */

const BATCH = 100;
const SENDERS = 6;
/** Kill after this many acknowledged batches, or this long after the first one. */
const KILL_AFTER_ACKS = 60;
const KILL_AFTER_MS = 1000;

let db: TestDatabase;
let project: { token: string; secret: string };
let store: Store | undefined;

/** Batch n: always the same 100 events, so a retry is byte-for-byte the same request. */
function batchBody(n: number): string {
  const events = Array.from({ length: BATCH }, (_, i) => ({
    event: 'Crash Test',
    properties: { distinct_id: `user-${(n * BATCH + i) % 97}`, time: 1_700_000_000 + n * BATCH + i, $insert_id: `b${n}-e${i}`, n, i },
  }));
  return JSON.stringify(events);
}

async function sendBatch(dispatcher: Agent, url: string, n: number): Promise<boolean> {
  const res = await request(`${url}/import?strict=1`, {
    method: 'POST',
    dispatcher,
    headers: {
      authorization: `Basic ${Buffer.from(`${project.secret}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: batchBody(n),
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await res.body.json()) as { code?: number; num_records_imported?: number };
  return res.statusCode === 200 && body.code === 200 && body.num_records_imported === BATCH;
}

/** (batch, count of stored events, count of distinct $insert_id) for every batch with a stored event. */
async function storedPerBatch(): Promise<Map<number, { events: number; distinct: number }>> {
  const rows = await store!.db
    .selectFrom('events')
    .select([
      'insert_id',
      sql<number>`count(*)`.as('copies'),
    ])
    .where('event', '=', 'Crash Test')
    .groupBy('insert_id')
    .execute();
  const perBatch = new Map<number, { events: number; distinct: number }>();
  for (const r of rows) {
    const n = Number(/^b(\d+)-e\d+$/.exec(r.insert_id ?? '')?.[1]);
    const entry = perBatch.get(n) ?? { events: 0, distinct: 0 };
    entry.events += Number(r.copies);
    entry.distinct += 1;
    perBatch.set(n, entry);
  }
  return perBatch;
}

beforeAll(async () => {
  db = await createTestDatabase();
  project = await createProjectWithCli('Crash test', db.args, db.env);
  store = openStore(db.config);
});

afterAll(async () => {
  killAllCliChildren();
  await store?.close();
  await db?.cleanup();
});

describe(`crash safety on ${dialectUnderTest}`, () => {
  it('keeps every acknowledged /import batch exactly once across a SIGKILL and client retries', async () => {
    let server = await startCliServer(db.args, db.env);
    const dispatcher = new Agent({ connections: SENDERS * 2 });
    const acked = new Set<number>();
    const sent = new Set<number>();
    let next = 0;
    let inFlight = 0;
    let stop = false;
    let firstAckAt = 0;
    const url = server.url;

    const sender = async () => {
      while (!stop) {
        const n = next++;
        sent.add(n);
        inFlight++;
        try {
          if (await sendBatch(dispatcher, url, n)) {
            acked.add(n);
            firstAckAt ||= Date.now();
          }
        } catch {
          // connection refused or reset: the batch is not acknowledged
        } finally {
          inFlight--;
        }
      }
    };
    const senders = Array.from({ length: SENDERS }, sender);

    // Kill once enough is acknowledged, while requests are in flight.
    const deadline = Date.now() + 15_000;
    while (!(acked.size >= KILL_AFTER_ACKS || (firstAckAt && Date.now() - firstAckAt >= KILL_AFTER_MS)) || inFlight < 2) {
      if (Date.now() > deadline) throw new Error(`no progress: ${acked.size} acknowledged, ${inFlight} in flight; ${server.stderr()}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    const inFlightAtKill = inFlight;
    server.kill('SIGKILL');
    const exit = await server.exited;
    stop = true;
    await Promise.all(senders);
    await dispatcher.close();
    expect(exit.signal).toBe('SIGKILL');
    expect(inFlightAtKill).toBeGreaterThan(0);
    expect(acked.size).toBeGreaterThan(0);

    // Straight after the crash: acknowledged batches are all there; every batch is all or nothing.
    const afterCrash = await storedPerBatch();
    for (const n of acked) expect(afterCrash.get(n), `acknowledged batch ${n}`).toEqual({ events: BATCH, distinct: BATCH });
    for (const [n, s] of afterCrash) {
      expect(sent.has(n)).toBe(true);
      expect(s, `batch ${n} after the crash`).toEqual({ events: BATCH, distinct: BATCH });
    }

    // Restart on the same database; retry what was not acknowledged, and a few that were.
    server = await startCliServer(db.args, db.env);
    const retryDispatcher = new Agent({ connections: SENDERS });
    const unacked = [...sent].filter((n) => !acked.has(n));
    const again = [...acked].slice(0, 5);
    const retried = await Promise.all([...unacked, ...again].map((n) => sendBatch(retryDispatcher, server.url, n)));
    await retryDispatcher.close();
    expect(retried.every(Boolean)).toBe(true);

    const final = await storedPerBatch();
    expect([...final.keys()].sort((a, b) => a - b)).toEqual([...sent].sort((a, b) => a - b));
    for (const [n, s] of final) expect(s, `batch ${n}`).toEqual({ events: BATCH, distinct: BATCH });
    const total = await store!.db
      .selectFrom('events')
      .select([sql<number>`count(*)`.as('all'), sql<number>`count(distinct insert_id)`.as('distinct')])
      .where('event', '=', 'Crash Test')
      .executeTakeFirstOrThrow();
    expect({ all: Number(total.all), distinct: Number(total.distinct) }).toEqual({ all: sent.size * BATCH, distinct: sent.size * BATCH });

    // The per-user daily counts agree with the events: nothing counted twice by the retries.
    const counted = await store!.db
      .selectFrom('event_daily_counts')
      .select(sql<number>`coalesce(sum(count), 0)`.as('n'))
      .where('event', '=', 'Crash Test')
      .executeTakeFirstOrThrow();
    expect(Number(counted.n)).toBe(sent.size * BATCH);

    // And the restarted server reads them back.
    const res = await request(`${server.url}/api/v1/events?event=Crash%20Test&limit=1`, {
      headers: { authorization: `Bearer ${project.secret}` },
    });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { results: unknown[] }).results).toHaveLength(1);

    server.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});

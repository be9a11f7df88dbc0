import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject } from '../../src/projects/projects.js';
import { recentAttempts } from '../../src/store/deliveries-repo.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Reading deliveries by time (GET /deliveries?since=&until=) and a connection's health
 * (GET /connections/{id}/health), on the database under test.
 */
let svc: TestService;
let receiver: Receiver;
/** The receiver answers each request with the status its path names: /200, /500 … */
const answerByPath = (path: string) => Number(path.slice(1, 4));

beforeAll(async () => {
  receiver = await startReceiver((r) => {
    const status = answerByPath(r.path);
    return { status, body: status === 200 ? '{"ok":true}' : `{"error":"status ${status} on purpose"}`, delayMs: status === 200 ? 0 : 5 };
  });
  svc = await startTestService((c) => {
    c.delivery.allowHttp = true;
    c.delivery.allowedNetworks = ['127.0.0.0/8'];
    c.delivery.pollIntervalMs = 20;
  });
});
afterAll(async () => {
  await svc?.close();
  await receiver?.close();
});

async function connection(path = '/200'): Promise<number> {
  const made = await svc.json<{ id: number }>('/api/v1/connections', 'POST', { name: 'c', url: `${receiver.origin}${path}` });
  expect(made.status).toBe(201);
  return made.body.id;
}

const enqueue = (connectionId: number, createdAt: number, n: number, policy = 'once', notBefore?: number) =>
  svc.service.delivery.outbox.enqueue(
    svc.service.store.db,
    Array.from({ length: n }, (_, i) => ({ projectId: svc.project.id, connectionId, ownerKind: 'test', ownerId: i, policy, contentType: 'application/json', body: `{"n":${i}}`, notBefore })),
    createdAt,
  );

describe('GET /deliveries by time', () => {
  it('lists the deliveries made in [since, until), newest first, in pages, with times as epoch s, ms or ISO', async () => {
    const c = await connection();
    const t0 = Date.UTC(2026, 0, 1);
    const later = Date.now() + 3_600_000; // not sent while the test reads them
    const [a] = await enqueue(c, t0, 1, 'once', later);
    const [b] = await enqueue(c, t0 + 1000, 1, 'once', later);
    const [d] = await enqueue(c, t0 + 2000, 1, 'once', later);
    const ids = async (query: string) => {
      const res = await svc.json<{ results: { id: number }[]; next_cursor: string | null }>(`/api/v1/deliveries?connection_id=${c}&${query}`);
      expect(res.status).toBe(200);
      return res.body.results.map((r) => r.id);
    };
    expect(await ids(`since=${t0 + 1000}`)).toEqual([d!.id, b!.id]);
    expect(await ids(`until=${(t0 + 1000) / 1000}`)).toEqual([a!.id]);
    expect(await ids(`since=${new Date(t0).toISOString()}&until=${new Date(t0 + 2000).toISOString()}`)).toEqual([b!.id, a!.id]);
    expect(await ids(`since=${t0 + 5000}&until=${Date.UTC(2026, 0, 2)}`)).toEqual([]);
    expect(await ids(`until=${t0}`)).toEqual([]);

    const first = await svc.json<{ results: { id: number }[]; next_cursor: string }>(`/api/v1/deliveries?connection_id=${c}&since=${t0}&until=${t0 + 2000}&limit=1`);
    expect(first.body.results.map((r) => r.id)).toEqual([b!.id]);
    const second = await svc.json<{ results: { id: number }[]; next_cursor: string | null }>(`/api/v1/deliveries?connection_id=${c}&since=${t0}&until=${t0 + 2000}&limit=1&cursor=${first.body.next_cursor}`);
    expect(second.body.results.map((r) => r.id)).toEqual([a!.id]);
    expect(second.body.next_cursor).toBeNull();

    const bad = await svc.json<{ error: { code: string; message: string } }>('/api/v1/deliveries?since=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toEqual({ code: 'invalid_time', message: 'since must be epoch seconds, epoch milliseconds or an ISO 8601 date' });
  });

  it('finds the ends of a window with an index, not by reading the table', async () => {
    const seek = sql`select id from deliveries where created_at >= ${Date.now()} order by created_at, id limit 1`;
    const plan =
      svc.database.config.databaseUrl === undefined
        ? (await sql<{ detail: string }>`explain query plan ${seek}`.execute(svc.service.store.db)).rows.map((r) => r.detail).join('\n')
        : // A near-empty table is cheaper to read whole: with that choice taken away, the plan shows the index serves the query.
          await svc.service.store.db.connection().execute(async (db) => {
            await sql`set enable_seqscan = off`.execute(db);
            const rows = (await sql<{ 'QUERY PLAN': string }>`explain ${seek}`.execute(db)).rows.map((r) => r['QUERY PLAN']).join('\n');
            await sql`reset enable_seqscan`.execute(db);
            return rows;
          });
    expect(plan).toContain('deliveries_by_created');
  });
});

describe('GET /connections/{id}/health', () => {
  it('reports the success rate, latency and last errors of the attempts in the window', async () => {
    const ok = await connection('/200');
    const failing = await connection('/500');
    const now = Date.now();
    await enqueue(ok, now, 3);
    const [bad] = await enqueue(failing, now, 1);
    svc.service.delivery.dispatcher.wake(true);
    const ended = async (id: number, n: number) =>
      waitFor(`connection ${id}'s deliveries to end`, async () => {
        const page = await svc.json<{ results: { state: string }[] }>(`/api/v1/deliveries?connection_id=${id}`);
        return page.body.results.filter((d) => d.state !== 'pending').length === n ? true : undefined;
      });
    await ended(ok, 3);
    await ended(failing, 1);

    const healthy = await svc.json(`/api/v1/connections/${ok}/health`);
    expect(healthy.status).toBe(200);
    expect(healthy.body).toMatchObject({ window: '24h', attempts: 3, succeeded: 3, failed: 0, success_rate: 1, last_errors: [], deliveries_read: 3, sampled: false });
    expect(healthy.body.latency_ms.p50).toBeGreaterThanOrEqual(0);
    expect(healthy.body.latency_ms.p95).toBeGreaterThanOrEqual(healthy.body.latency_ms.p50);

    const sick = await svc.json(`/api/v1/connections/${failing}/health?window=90m`);
    expect(sick.body).toMatchObject({ window: '90m', attempts: 1, succeeded: 0, success_rate: 0 });
    expect(sick.body.last_errors).toEqual([
      expect.objectContaining({ delivery_id: bad!.id, attempt: 1, status: 500, outcome: 'failed', reason: expect.stringContaining('500') }),
    ]);
    expect(sick.body.latency_ms.p50).toBeGreaterThanOrEqual(5);

    // An attempt from before the window is left out, and counted by a wider one.
    await svc.service.store.db.updateTable('delivery_attempts').set({ started_at: now - 2 * 86_400_000 }).where('delivery_id', '=', bad!.id).execute();
    expect((await svc.json(`/api/v1/connections/${failing}/health`)).body).toMatchObject({ attempts: 0, success_rate: null, latency_ms: null, last_errors: [] });
    expect((await svc.json(`/api/v1/connections/${failing}/health?window=3d`)).body).toMatchObject({ attempts: 1, failed: 1 });
  });

  it('reads only the latest deliveries it is given room for', async () => {
    const c = await connection('/200');
    await enqueue(c, Date.now(), 3);
    svc.service.delivery.dispatcher.wake(true);
    await waitFor('three attempts', async () => ((await svc.json<{ attempts: number }>(`/api/v1/connections/${c}/health`)).body.attempts === 3 ? true : undefined));
    const read = await recentAttempts(svc.service.store, c, 0, 2);
    expect(read.deliveries).toBe(2);
    expect(read.attempts).toHaveLength(2);
  });

  it('says when the window holds more deliveries than it read', async () => {
    const c = await connection('/200');
    await enqueue(c, Date.now(), 1001, 'once', Date.now() + 3_600_000);
    expect((await svc.json(`/api/v1/connections/${c}/health`)).body).toMatchObject({ deliveries_read: 1000, sampled: true, attempts: 0 });
    // The same deliveries, made before the window: nothing in it was left out.
    await svc.service.store.db.updateTable('deliveries').set({ created_at: Date.now() - 2 * 86_400_000 }).where('connection_id', '=', c).execute();
    expect((await svc.json(`/api/v1/connections/${c}/health`)).body).toMatchObject({ deliveries_read: 1000, sampled: false });
  });

  it('refuses a window it does not read and a connection of another project', async () => {
    const c = await connection();
    for (const window of ['31d', '24', 'week', '0h']) expect((await svc.json(`/api/v1/connections/${c}/health?window=${window}`)).status).toBe(400);
    const other = await createProject(svc.service.store, 'Other');
    const res = await fetch(`${svc.url}/api/v1/connections/${c}/health`, { headers: { authorization: `Bearer ${other.secret}` } });
    expect(res.status).toBe(404);
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cohortSyncReply, parseCohortSync } from '../../packages/receiver/src/index.js';
import { dialectUnderTest } from '../helpers/database.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The SQLite file stops growing once the retention horizon is reached: a churning cohort synced
 * again as soon as each run ends (30-minute syncs, compressed), with every duration shrunk alike:
 * deliveries and runs kept 2 s, bodies 0.7 s, pruning every 250 ms. The database's size (pages in
 * use plus free ones: the file once checkpointed) grows through the first horizon, then levels off,
 * as SQLite reuses the pages pruning frees. The delivery engine keeps real time, so the clock is
 * the real one, compressed by configuration rather than injected. SQLite only: PostgreSQL's files
 * are autovacuum's to manage, on its own schedule.
 */
const MEMBERS = 1500;
const CHURN = 60;
const KEEP_MS = 2000;
const SAMPLE_MS = 1000;
const RUN_FOR_MS = 5 * KEEP_MS;

let svc: TestService;
let server: http.Server;
let received = 0;

beforeAll(async () => {
  if (dialectUnderTest !== 'sqlite') return;
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = parseCohortSync(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      received++;
      res.setHeader('content-type', 'application/json');
      res.writeHead(200).end(JSON.stringify(cohortSyncReply(request.action)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  svc = await startTestService(
    (config) => {
      config.delivery.allowHttp = true;
      config.delivery.allowedNetworks = ['127.0.0.0/8'];
      config.scheduler.pollIntervalMs = 10;
      config.sync.pageSize = 200;
      Object.assign(config.retention, { deliveriesMs: KEEP_MS, bodiesMs: KEEP_MS / 3, syncRunsMs: KEEP_MS, intervalMs: 250, slicePauseMs: 0 });
    },
  );
});

afterAll(async () => {
  await svc?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
});

const bio = (i: number, round: number) => `${i}:${round}:`.padEnd(300, 'x');

async function engage(records: object[]): Promise<void> {
  const res = await fetch(`${svc.url}/engage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
  expect(res.status).toBe(200);
}

describe.skipIf(dialectUnderTest !== 'sqlite')('retention keeps the SQLite file level', () => {
  it('grows through the first horizon, then stops growing', { timeout: 120_000 }, async () => {
    const token = svc.project.token;
    await engage(Array.from({ length: MEMBERS }, (_, i) => ({ $token: token, $distinct_id: `u${i}`, $set: { plan: 'pro', bio: bio(i, 0) } })));
    const connection = await svc.json('/api/v1/connections', 'POST', { name: 'receiver', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/sync` });
    const cohort = await svc.json('/api/v1/cohorts', 'POST', { name: 'Pros', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    const sync = await svc.json('/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.body.id, connection_id: connection.body.id, properties_to_export: ['bio'], interval_minutes: 30 });
    expect(sync.status, JSON.stringify(sync.body)).toBe(201);
    const { store } = svc.service;
    // The last run that succeeded (pruning removes old runs: a count would go down).
    const succeeded = async () => (await store.db.selectFrom('sync_runs').select('id').where('state', '=', 'succeeded').orderBy('id', 'desc').limit(1).executeTakeFirst())?.id ?? 0;
    if (store.dialect !== 'sqlite') throw new Error('SQLite only');
    const { raw } = store;
    const pages = () => {
      const row = raw.prepare('select page_count as n from pragma_page_count()').get() as { n: number };
      return row.n;
    };

    const sizes: number[] = [];
    // The first (full) run starts when the sync is made.
    let last = await waitFor('the first run', async () => (await succeeded()) || undefined);
    const started = Date.now();
    let runs = 1;
    for (let step = 1; Date.now() - started < RUN_FOR_MS; step++) {
      // A churn of CHURN members (half leave, half come back) and every bio rewritten among them.
      const base = (step * CHURN) % MEMBERS;
      await engage(Array.from({ length: CHURN }, (_, k) => ({ $token: token, $distinct_id: `u${(base + k) % MEMBERS}`, $set: { plan: (step + k) % 2 ? 'pro' : 'free', bio: bio(k, step) } })));
      expect((await svc.json(`/api/v1/cohort-syncs/${sync.body.id}/run`, 'POST')).status).toBeLessThan(300);
      last = await waitFor(`run ${runs + 1}`, async () => ((await succeeded()) > last ? succeeded() : undefined));
      runs++;
      while (sizes.length < Math.floor((Date.now() - started) / SAMPLE_MS)) sizes.push(pages());
    }
    expect(received).toBeGreaterThan(runs);
    const removed = svc.service.retention.pruner.last?.removed ?? {};
    expect(removed.deliveries ?? 0).toBeGreaterThan(0);
    // Two samples to a horizon: the growth over the last half (two and a half horizons) is a small part of the first horizon's.
    const first = sizes[2]! - sizes[0]!;
    const lastHalf = sizes.at(-1)! - sizes[Math.floor(sizes.length / 2)]!;
    console.log(`database pages every ${SAMPLE_MS} ms over ${runs} runs: ${sizes.join(', ')}`);
    expect(first).toBeGreaterThan(0);
    expect(lastHalf).toBeLessThan(first / 4);
  });
});

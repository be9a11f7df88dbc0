import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CohortMirror, cohortSyncReply, parseCohortSync, verifySignature, type CohortSyncRequest } from '../../packages/receiver/src/index.js';
import { cliApi, createProjectWithCli, killAllCliChildren, startCliServer, type CliProject, type CliServer } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { localDeliveryEnv } from '../helpers/delivery-backlog.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A `cohortcast serve` killed with SIGKILL in the middle of a sync run: the page on the wire is
 * never answered. A new process on the same database finishes the run: same session, every page,
 * and the receiver's copy of the cohort equals the cohort. Arrivals are counted against the
 * attempt log (a page that timed out on a busy machine was retried, and logged so).
 */
const PAGE_SIZE = 5;
const PROFILES = 40; // 8 pages
const KILL_AT_PAGE = 4;

const env = {
  ...localDeliveryEnv,
  COHORTCAST_SYNC_PAGE_SIZE: String(PAGE_SIZE),
  // One page at a time, so the kill finds exactly KILL_AT_PAGE pages sent.
  COHORTCAST_SYNC_PAGES_IN_FLIGHT: '1',
  COHORTCAST_SCHEDULER_POLL_INTERVAL_MS: '50',
  COHORTCAST_DELIVERY_POLL_INTERVAL_MS: '50',
  COHORTCAST_DELIVERY_LEASE_MS: '1500',
  COHORTCAST_DELIVERY_MAX_TIMEOUT_MS: '1000',
  COHORTCAST_DELIVERY_TIMEOUT_MS: '1000',
};

let db: TestDatabase;
let project: CliProject;
let receiver: http.Server;
let victim: CliServer | undefined;
let killed = false;
let secret = '';
const seen: (CohortSyncRequest & { webhookId: string })[] = [];
const mirror = new CohortMirror();

beforeAll(async () => {
  db = await createTestDatabase();
  project = await createProjectWithCli('Sync crash test', db.args, db.env);
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const { webhookId } = verifySignature({ secrets: secret, headers: req.headers, body });
      const request = parseCohortSync(body);
      seen.push({ ...request, webhookId });
      if (!killed && request.parameters.page_info.page_count === KILL_AT_PAGE) {
        // Killed while this page is on the wire: never answered, never recorded.
        killed = true;
        victim?.kill('SIGKILL');
        return;
      }
      mirror.receive(request, webhookId);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(cohortSyncReply(request.action)));
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  killAllCliChildren();
  receiver?.closeAllConnections();
  await new Promise((resolve) => receiver?.close(resolve));
  await db?.cleanup();
});

const api = (base: string, path: string, method = 'GET', body?: unknown) => cliApi(base, project.secret, path, method, body);

describe(`a cohort sync across a SIGKILL on ${dialectUnderTest}`, () => {
  it('is finished by the next process: same session, every page, the receiver equal to the cohort', { timeout: 60_000 }, async () => {
    const first = await startCliServer(db.args, { ...db.env, ...env });
    victim = first;
    const updates = Array.from({ length: PROFILES }, (_, i) => ({ $token: project.token, $distinct_id: `p${String(i).padStart(2, '0')}`, $set: { plan: 'pro', $email: `p${i}@example.com` } }));
    const engage = await fetch(`${first.url}/engage`, { method: 'POST', body: `data=${Buffer.from(JSON.stringify(updates)).toString('base64')}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await engage.text()).toBe('1');
    const cohort = await api(first.url, '/api/v1/cohorts', 'POST', { name: 'Pros', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    const { port } = receiver.address() as AddressInfo;
    const connection = await api(first.url, '/api/v1/connections', 'POST', { name: 'receiver', url: `http://127.0.0.1:${port}/sync`, timeout_ms: 1000 });
    secret = connection.body.signing_secret;
    const sync = await api(first.url, '/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.body.id, connection_id: connection.body.id });
    expect(sync.status).toBe(201);

    const exit = await Promise.race([first.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the server was not killed in time')), 30_000).unref())]);
    expect(exit.signal).toBe('SIGKILL');
    // One page out at a time: the kill came as page KILL_AT_PAGE arrived, after every earlier page.
    expect([...new Set(seen.map((r) => r.parameters.page_info.page_count))]).toEqual(Array.from({ length: KILL_AT_PAGE }, (_, i) => i + 1));

    const second = await startCliServer(db.args, { ...db.env, ...env });
    try {
      const runs = await waitFor(
        'the run to succeed in the second process',
        async () => {
          const body = (await api(second.url, `/api/v1/cohort-syncs/${sync.body.id}/runs`)).body as { results: { id: number; state: string; session_id: string; total_pages: number; pages_acked: number }[] };
          return body.results[0]?.state === 'succeeded' ? body.results : undefined;
        },
        30_000,
      );
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ state: 'succeeded', total_pages: PROFILES / PAGE_SIZE, pages_acked: PROFILES / PAGE_SIZE });
      const session = runs[0]!.session_id;
      expect(new Set(seen.map((r) => r.parameters.mixpanel_session_id))).toEqual(new Set([session]));
      // Every page arrived, each as one delivery (one webhook-id); each as often as its attempts
      // were logged, and the one on the wire at the kill once more (its attempt died unlogged).
      const pages = seen.map((r) => r.parameters.page_info.page_count);
      expect([...new Set(pages)].sort((a, b) => a - b)).toEqual(Array.from({ length: PROFILES / PAGE_SIZE }, (_, i) => i + 1));
      for (let page = 1; page <= PROFILES / PAGE_SIZE; page++) {
        const [delivery] = (await api(second.url, `/api/v1/deliveries?owner_kind=cohort-sync&owner_id=${runs[0]!.id}:${page}`)).body.results as { webhook_id: string; attempts: number }[];
        const arrivals = seen.filter((r) => r.parameters.page_info.page_count === page);
        expect(new Set(arrivals.map((r) => r.webhookId))).toEqual(new Set([delivery!.webhook_id]));
        expect(arrivals.length, `arrivals of page ${page}`).toBe(delivery!.attempts + (page === KILL_AT_PAGE ? 1 : 0));
      }
      const members = (await api(second.url, `/api/v1/cohorts/${cohort.body.id}/members?limit=1000`)).body.results.map((m: { $distinct_id: string }) => m.$distinct_id);
      expect(members).toHaveLength(PROFILES);
      expect(mirror.members(String(cohort.body.id)).map((m) => m.mixpanel_distinct_id)).toEqual(members);
    } finally {
      await second.stop();
    }
  });
});

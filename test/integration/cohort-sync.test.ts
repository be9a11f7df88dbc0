import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CohortMirror, cohortSyncReply, parseCohortSync, verifySignature, type CohortSyncRequest } from '../../packages/receiver/src/index.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Cohort sync end to end (seed 002), on the database the suite runs against: profiles through
 * the official mixpanel client, a cohort, a connection to a real local receiver built on packages/receiver, a sync, then
 * changes and more runs. After every run the receiver's rebuilt membership must equal the cohort,
 * also through 5xx streaks and a 400 then resume. Every request must match the JSON Schema.
 */
// Profiles go in through the official client, unchanged (CommonJS, callback-based).
const Mixpanel = createRequire(import.meta.url)('mixpanel') as typeof import('mixpanel');
const schema = JSON.parse(fs.readFileSync(new URL('../../packages/receiver/schema/cohort-sync.schema.json', import.meta.url), 'utf8'));
const validate = new Ajv({ allErrors: true }).compile(schema);

interface Seen {
  request: CohortSyncRequest;
  body: string;
  webhookId: string;
  contentType: string | undefined;
  authorization: string | undefined;
}

let svc: TestService;
let server: http.Server;
let receiverUrl: string;
let secret = '';
let answer: 'ok' | '500' | 'refuse' = 'ok';
const seen: Seen[] = [];
const mirror = new CohortMirror();
const schemaErrors: string[] = [];

beforeAll(async () => {
  svc = await startTestService((config) => {
    config.delivery.allowHttp = true;
    config.delivery.allowedNetworks = ['127.0.0.0/8'];
    config.delivery.cohortSyncSchedule = [0, 10, 20, 30, 40, 50];
    config.delivery.jitter = 0;
    config.sync.pageSize = 3;
    // Two pages out at once: they may arrive in either order, which the receiver must handle.
    config.sync.pagesInFlight = 2;
    config.scheduler.pollIntervalMs = 50;
  });
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const { webhookId } = verifySignature({ secrets: secret, headers: req.headers, body });
      const parsed: unknown = JSON.parse(body);
      if (!validate(parsed)) schemaErrors.push(JSON.stringify(validate.errors));
      const request = parseCohortSync(parsed);
      seen.push({ request, body, webhookId, contentType: req.headers['content-type'], authorization: req.headers.authorization });
      res.setHeader('content-type', 'application/json');
      if (answer === '500') return res.writeHead(500).end('{"error":"busy"}');
      if (answer === 'refuse') return res.writeHead(200).end(JSON.stringify(cohortSyncReply(request.action, { message: 'cohort quota exceeded', code: 400 })));
      mirror.receive(request, webhookId);
      res.writeHead(200).end(JSON.stringify(cohortSyncReply(request.action)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cohorts`;
});

afterAll(async () => {
  await svc?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

const api = <T = any>(path: string, method = 'GET', body?: unknown) => svc.json<T>(path, method, body);

async function setProfiles(profiles: Record<string, Record<string, unknown>>): Promise<void> {
  const client = Mixpanel.init(svc.project.token, { host: new URL(svc.url).host, protocol: 'http' });
  for (const [id, set] of Object.entries(profiles)) {
    const err = await new Promise<unknown>((resolve) => client.people.set(id, set as Record<string, string>, (e) => resolve(e)));
    expect(err ?? undefined).toBeUndefined();
  }
}

type Run = { id: number; session_id: string; kind: string; state: string; total_pages: number; pages_acked: number; members_added: number; members_removed: number; error: string | null };
const runs = async (syncId: number) => (await api<{ results: Run[] }>(`/api/v1/cohort-syncs/${syncId}/runs`)).body.results;
/** What was seen, in page order (pages of one window arrive in any order). */
const byPage = <T>(f: (s: Seen) => T) => [...seen].sort((a, b) => a.request.parameters.page_info.page_count - b.request.parameters.page_info.page_count).map(f);

const runEnded = (syncId: number, count: number, state = 'succeeded') =>
  waitFor(`run ${count} to be ${state}`, async () => {
    const all = await runs(syncId);
    return all.length === count && all[0]!.state === state ? all[0] : undefined;
  }, 15_000);

type PageDelivery = { id: number; webhook_id: string; state: string; outcome: string | null; attempts: number };
/** The deliveries of a run's pages 1…n, in page order, once each satisfies `ready`. */
const pageDeliveries = (runId: number, pages: number, ready: (d: PageDelivery) => boolean) =>
  waitFor(`the deliveries of run ${runId}'s pages`, async () => {
    const all: PageDelivery[] = [];
    for (let page = 1; page <= pages; page++) {
      const res = await api<{ results: PageDelivery[] }>(`/api/v1/deliveries?owner_kind=cohort-sync&owner_id=${runId}:${page}`);
      if (res.body.results.length !== 1 || !ready(res.body.results[0]!)) return undefined;
      all.push(res.body.results[0]!);
    }
    return all;
  });

async function cohortMembers(cohortId: number): Promise<string[]> {
  const res = await api<{ results: { $distinct_id: string }[] }>(`/api/v1/cohorts/${cohortId}/members?limit=1000`);
  return res.body.results.map((m) => m.$distinct_id);
}

describe('cohort sync to a custom webhook', () => {
  it('sends the whole cohort, then diffs, converging through failures, a refusal and a resume', async () => {
    // u0…u7 are pro; u8, u9 free. company is exported; u2 has none (left out, never null).
    const profiles: Record<string, Record<string, unknown>> = {};
    for (let i = 0; i < 10; i++) {
      profiles[`u${i}`] = { plan: i < 8 ? 'pro' : 'free', $email: `u${i}@example.com`, $first_name: `User${i}`, ...(i === 2 ? {} : { company: `C${i}` }) };
    }
    await setProfiles(profiles);
    const cohort = await api('/api/v1/cohorts', 'POST', { name: 'Pros', description: 'on the pro plan', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    expect(cohort.status).toBe(201);
    const connection = await api('/api/v1/connections', 'POST', { name: 'receiver', url: receiverUrl, basic_auth: { username: 'hook', password: 'pw' } });
    expect(connection.status).toBe(201);
    secret = connection.body.signing_secret;

    const created = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.body.id, connection_id: connection.body.id, properties_to_export: ['company'] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ state: 'active', interval_minutes: 30, one_time: false, properties_to_export: ['company'] });
    const syncId: number = created.body.id;
    expect((await api(`/api/v1/cohorts/${cohort.body.id}/usage`)).body).toEqual({ cohorts: [], cohort_syncs: [syncId], subscriptions: [], messages: [] });

    // T: the first run sends everyone, 8 members in pages of 3, one session.
    const first = await runEnded(syncId, 1);
    expect(first).toMatchObject({ kind: 'full', total_pages: 3, pages_acked: 3, members_added: 8, members_removed: 0 });
    expect(byPage((s) => [s.request.action, s.request.parameters.page_info])).toEqual([
      ['members', { total_pages: 3, page_count: 1 }],
      ['members', { total_pages: 3, page_count: 2 }],
      ['members', { total_pages: 3, page_count: 3 }],
    ]);
    expect(new Set(seen.map((s) => s.request.parameters.mixpanel_session_id))).toEqual(new Set([first.session_id]));
    const p = seen.find((s) => s.request.parameters.page_info.page_count === 1)!.request.parameters;
    expect(p).toMatchObject({ mixpanel_project_id: String(svc.project.id), mixpanel_cohort_id: String(cohort.body.id), mixpanel_cohort_name: 'Pros', mixpanel_cohort_description: 'on the pro plan' });
    expect(p.members[0]).toEqual({ mixpanel_distinct_id: 'u0', email: 'u0@example.com', first_name: 'User0', company: 'C0' });
    expect(p.members.find((m) => m.mixpanel_distinct_id === 'u2')).toEqual({ mixpanel_distinct_id: 'u2', email: 'u2@example.com', first_name: 'User2' });
    expect(seen.every((s) => s.contentType === 'application/json' && s.authorization === `Basic ${Buffer.from('hook:pw').toString('base64')}`)).toBe(true);
    expect(mirror.members(String(cohort.body.id)).map((m) => m.mixpanel_distinct_id)).toEqual(await cohortMembers(cohort.body.id));

    // T+0.5h: u1, u3 leave, u8 joins: add_members(u8) and remove_members(u1, u3), one session.
    seen.length = 0;
    await setProfiles({ u1: { plan: 'free' }, u3: { plan: 'free' }, u8: { plan: 'pro' } });
    expect((await api(`/api/v1/cohort-syncs/${syncId}/run`, 'POST')).status).toBe(202);
    const diff = await runEnded(syncId, 2);
    expect(diff).toMatchObject({ kind: 'diff', total_pages: 2, members_added: 1, members_removed: 2 });
    expect(byPage((s) => [s.request.action, s.request.parameters.members.map((m) => m.mixpanel_distinct_id), s.request.parameters.page_info.page_count])).toEqual([
      ['add_members', ['u8'], 1],
      ['remove_members', ['u1', 'u3'], 2],
    ]);
    expect(mirror.members(String(cohort.body.id)).map((m) => m.mixpanel_distinct_id)).toEqual(await cohortMembers(cohort.body.id));

    // T+1h, no changes: both calls are made, empty.
    seen.length = 0;
    await api(`/api/v1/cohort-syncs/${syncId}/run`, 'POST');
    await runEnded(syncId, 3);
    expect(byPage((s) => [s.request.action, s.request.parameters.members.length])).toEqual([
      ['add_members', 0],
      ['remove_members', 0],
    ]);

    // A 5xx streak: each page is retried within the policy, then the run fails; the next run
    // resumes it (same session, from its first unacknowledged page) and the receiver converges.
    seen.length = 0;
    answer = '500';
    await setProfiles({ u9: { plan: 'pro' }, u4: { plan: 'free' } });
    await api(`/api/v1/cohort-syncs/${syncId}/run`, 'POST');
    const failed = await runEnded(syncId, 4, 'failed');
    expect(failed.error).toMatch(/^HTTP 500/);
    // The page that failed the run had its first attempt and 5 retries; the one beside it was
    // stopped when the run failed (cancelled if it was between attempts). Every request the
    // receiver got is in the attempt log, and no page is attempted once its delivery has ended.
    const ended = await pageDeliveries(failed.id, 2, (d) => d.state !== 'pending');
    expect(Math.max(...ended.map((d) => d.attempts))).toBe(6);
    expect(ended.some((d) => d.state === 'failed' && d.outcome === 'exhausted' && d.attempts === 6)).toBe(true);
    for (const d of ended) {
      expect(d.attempts).toBeLessThanOrEqual(6);
      expect(seen.filter((x) => x.webhookId === d.webhook_id)).toHaveLength(d.attempts);
    }
    // "RUN:" (an owner id ending in ":") lists the run's page deliveries together.
    const ofRun = await api<{ results: PageDelivery[] }>(`/api/v1/deliveries?owner_kind=cohort-sync&owner_id=${failed.id}:`);
    expect(ofRun.body.results.map((d) => d.id).sort()).toEqual(ended.map((d) => d.id).sort());
    expect((await api(`/api/v1/cohort-syncs/${syncId}`)).body.state).toBe('active');
    // The pages as they went out, to compare the resumed run's with, byte for byte.
    const sentBefore = new Map(seen.map((x) => [x.webhookId, x.body]));
    // A profile on a page changes meanwhile: a page already sent is sent again as it was.
    await setProfiles({ u9: { $email: 'changed@example.com' } });
    answer = 'ok';
    seen.length = 0;
    await api(`/api/v1/cohort-syncs/${syncId}/run`, 'POST');
    const resumed = await runEnded(syncId, 4);
    expect(resumed.session_id).toBe(failed.session_id);
    expect(byPage((s) => [s.request.action, s.request.parameters.mixpanel_session_id])).toEqual([
      ['add_members', failed.session_id],
      ['remove_members', failed.session_id],
    ]);
    // Each page goes again as the same delivery: its webhook-id, and the body it had the first time.
    expect(byPage((s) => s.webhookId)).toEqual(ended.map((d) => d.webhook_id));
    for (const x of seen) if (sentBefore.has(x.webhookId)) expect(x.body).toBe(sentBefore.get(x.webhookId));
    expect(seen.find((s) => s.request.action === 'add_members')!.request.parameters.members).toEqual([
      { mixpanel_distinct_id: 'u9', email: 'u9@example.com', first_name: 'User9', company: 'C9' },
    ]);
    expect(mirror.members(String(cohort.body.id)).map((m) => m.mixpanel_distinct_id)).toEqual(await cohortMembers(cohort.body.id));

    // A refusal (status failure, code 400): the sync pauses with the receiver's message; /run
    // answers 409 until it is resumed; the paused run goes on where it stopped.
    seen.length = 0;
    answer = 'refuse';
    await setProfiles({ u5: { plan: 'free' } });
    await api(`/api/v1/cohort-syncs/${syncId}/run`, 'POST');
    const paused = await runEnded(syncId, 5, 'paused');
    expect(paused.error).toBe('cohort quota exceeded');
    // No retry of a permanent refusal: once both pages' deliveries have ended (nothing more can
    // be sent for them), each went at most once, and the refused one exactly once.
    const refused = await pageDeliveries(paused.id, 2, (d) => d.state !== 'pending');
    expect(refused.some((d) => d.outcome === 'rejected' && d.attempts === 1)).toBe(true);
    for (const d of refused) {
      expect(d.attempts).toBeLessThanOrEqual(1);
      expect(seen.filter((x) => x.webhookId === d.webhook_id)).toHaveLength(d.attempts);
    }
    const sync = (await api(`/api/v1/cohort-syncs/${syncId}`)).body;
    expect(sync).toMatchObject({ state: 'paused', state_reason: expect.stringMatching(/^the receiver refused page [12]: cohort quota exceeded$/) });
    const refusedRun = await api(`/api/v1/cohort-syncs/${syncId}/run`, 'POST');
    expect(refusedRun.status).toBe(409);
    expect(refusedRun.body.error.message).toMatch(/is paused .*resume/);
    const refusedPages = new Map(seen.map((x) => [x.webhookId, x.body]));
    answer = 'ok';
    seen.length = 0;
    expect((await api(`/api/v1/cohort-syncs/${syncId}/resume`, 'POST')).status).toBe(202);
    const done = await runEnded(syncId, 5);
    expect(done.session_id).toBe(paused.session_id);
    // Both pages go again, as the same deliveries, those sent before as they were.
    expect(byPage((s) => s.webhookId)).toEqual(refused.map((d) => d.webhook_id));
    for (const x of seen) if (refusedPages.has(x.webhookId)) expect(x.body).toBe(refusedPages.get(x.webhookId));
    expect((await api(`/api/v1/cohort-syncs/${syncId}`)).body.state).toBe('active');
    expect(mirror.members(String(cohort.body.id)).map((m) => m.mixpanel_distinct_id)).toEqual(await cohortMembers(cohort.body.id));
    expect((await api(`/api/v1/cohort-syncs/${syncId}/resume`, 'POST')).status).toBe(409);

    // Only the base of the next diff is kept: the scheduler drops superseded snapshots and pages.
    await waitFor('superseded snapshots to be dropped', async () => {
      const kept = await svc.service.store.db.selectFrom('sync_snapshots').select('run_id').distinct().execute();
      const pages = await svc.service.store.db.selectFrom('sync_pages').select('run_id').distinct().execute();
      return kept.length === 1 && kept[0]!.run_id === done.id && pages.every((p) => p.run_id === done.id) ? true : undefined;
    });

    // Neither the cohort nor the connection can be deleted under a sync; the sync can.
    const cohortInUse = await api(`/api/v1/cohorts/${cohort.body.id}`, 'DELETE');
    expect(cohortInUse.status).toBe(409);
    expect(cohortInUse.body.error.message).toBe(`cohort ${cohort.body.id} is synced by cohort sync ${syncId}; delete those first`);
    const connectionInUse = await api(`/api/v1/connections/${connection.body.id}`, 'DELETE');
    expect(connectionInUse.status).toBe(409);
    expect(connectionInUse.body.error.message).toBe(`connection ${connection.body.id} is used by cohort sync ${syncId}; delete those first`);
    expect((await api(`/api/v1/cohort-syncs/${syncId}`, 'DELETE')).status).toBe(204);
    expect((await api(`/api/v1/cohort-syncs/${syncId}`)).status).toBe(404);
    expect((await api(`/api/v1/cohorts/${cohort.body.id}`, 'DELETE')).status).toBe(204);

    expect(schemaErrors).toEqual([]);
  });

  it('refuses a sync of a cohort or connection that does not exist, naming the field', async () => {
    const res = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: 987654, connection_id: 1 });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe('cohort_id: no cohort 987654 in this project');
  });
});

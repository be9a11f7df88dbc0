import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.js';

let svc: TestService;
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');

beforeAll(async () => {
  svc = await startTestService();
  const token = svc.project.token;
  const updates = Array.from({ length: 25 }, (_, i) => ({
    $token: token,
    $distinct_id: `user-${String(i).padStart(2, '0')}`,
    $set: { plan: i % 3 === 0 ? 'pro' : 'free', seats: i % 5, beta: i % 2 === 0, $email: `u${i}@example.com` },
  }));
  const events = Array.from({ length: 30 }, (_, i) => ({
    event: i % 2 ? 'Purchase' : 'Login',
    properties: { token, distinct_id: `user-${String(i % 4).padStart(2, '0')}`, time: 1_700_000_000 + i * 60, $insert_id: `e${i}` },
  }));
  for (const [path, body] of [['/engage', updates], ['/track', events]] as const) {
    const res = await fetch(`${svc.url}${path}`, { method: 'POST', body: `data=${b64(body)}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await res.text()).toBe('1');
  }
});
afterAll(() => svc?.close());

type Page<T> = { results: T[]; next_cursor: string | null };

async function collect<T>(path: string): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await svc.api(cursor ? `${path}${sep}cursor=${cursor}` : path);
    expect(res.status).toBe(200);
    const page = (await res.json()) as Page<T>;
    all.push(...page.results);
    if (!page.next_cursor) return all;
    cursor = page.next_cursor;
  }
  throw new Error('paging did not end');
}

describe('management API: authentication', () => {
  it('takes the secret as Bearer or Basic, and refuses anything else with a message', async () => {
    const basic = await fetch(`${svc.url}/api/v1/profiles?limit=1`, {
      headers: { authorization: `Basic ${Buffer.from(`${svc.project.secret}:`).toString('base64')}` },
    });
    expect(basic.status).toBe(200);
    const none = await fetch(`${svc.url}/api/v1/profiles`);
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ error: { code: 'unauthorized', message: expect.stringMatching(/Bearer/) } });
    const token = await fetch(`${svc.url}/api/v1/profiles`, { headers: { authorization: `Bearer ${svc.project.token}` } });
    expect(token.status).toBe(401);
  });
});

describe('GET /api/v1/profiles', () => {
  it('pages through every profile once, in distinct_id order', async () => {
    const all = await collect<{ $distinct_id: string }>('/api/v1/profiles?limit=7');
    expect(all.map((p) => p.$distinct_id)).toEqual(Array.from({ length: 25 }, (_, i) => `user-${String(i).padStart(2, '0')}`));
  });

  it('filters on property values of any JSON type, and on a list of ids', async () => {
    const ids = async (query: string) => (await collect<{ $distinct_id: string }>(`/api/v1/profiles?${query}`)).map((p) => p.$distinct_id);
    expect(await ids('property.plan=pro')).toEqual(['user-00', 'user-03', 'user-06', 'user-09', 'user-12', 'user-15', 'user-18', 'user-21', 'user-24']);
    expect(await ids('property.plan=pro&property.seats=0')).toEqual(['user-00', 'user-15']);
    expect(await ids('property.beta=true&property.plan=pro&limit=2')).toEqual(['user-00', 'user-06', 'user-12', 'user-18', 'user-24']);
    expect(await ids('distinct_id=user-01,user-02,ghost')).toEqual(['user-01', 'user-02']);
    expect(await ids('property.%24email=u7%40example.com')).toEqual(['user-07']);
  });

  it('refuses bad parameters with a clear error', async () => {
    const limit = await svc.api('/api/v1/profiles?limit=5000');
    expect(limit.status).toBe(400);
    expect(((await limit.json()) as { error: { message: string } }).error.message).toMatch(/at most 1000/);
    const cursor = await svc.api('/api/v1/profiles?cursor=garbage');
    expect(cursor.status).toBe(400);
    expect(((await cursor.json()) as { error: { code: string } }).error.code).toBe('invalid_cursor');
    const key = await svc.api('/api/v1/profiles?property.a%22b=1');
    expect(key.status).toBe(400);
  });

  it('shows one profile, and 404 once it is deleted', async () => {
    const one = await svc.api('/api/v1/profiles/user-03');
    expect(await one.json()).toMatchObject({ $distinct_id: 'user-03', $properties: { plan: 'pro', seats: 3 } });
    const del = await fetch(`${svc.url}/engage`, {
      method: 'POST',
      body: `data=${b64({ $token: svc.project.token, $distinct_id: 'user-03', $delete: '' })}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(await del.text()).toBe('1');
    const gone = await svc.api('/api/v1/profiles/user-03');
    expect(gone.status).toBe(404);
    expect(await gone.json()).toEqual({ error: { code: 'not_found', message: 'no profile with distinct_id "user-03"' } });
  });
});

describe('GET /api/v1/events', () => {
  type Ev = { id: number; event: string; distinct_id: string; time_ms: number; time: string };

  it('pages in time order and filters by event, distinct_id and time range', async () => {
    const all = await collect<Ev>('/api/v1/events?limit=4');
    expect(all).toHaveLength(30);
    expect(all.map((e) => e.time_ms)).toEqual([...all.map((e) => e.time_ms)].sort((a, b) => a - b));
    expect(all[0]!.time).toBe('2023-11-14T22:13:20.000Z');
    expect(await collect<Ev>('/api/v1/events?event=Purchase')).toHaveLength(15);
    expect(await collect<Ev>('/api/v1/events?distinct_id=user-01&event=Purchase')).toHaveLength(8);
    // from is inclusive, to exclusive; seconds, milliseconds and ISO dates all work.
    expect(await collect<Ev>('/api/v1/events?from=1700000000&to=1700000600')).toHaveLength(10);
    expect(await collect<Ev>('/api/v1/events?from=1700000000000&to=2023-11-14T22:23:20Z')).toHaveLength(10);
  });

  it('refuses an unreadable time', async () => {
    const res = await svc.api('/api/v1/events?from=last-tuesday');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_time');
  });
});

describe('the daily count table', () => {
  it('counts each stored event once per user, event and UTC day, in the same write', async () => {
    const rows = await svc.service.store.db
      .selectFrom('event_daily_counts')
      .select(['distinct_id', 'event', 'day', 'count'])
      .where('project_id', '=', svc.project.id)
      .orderBy('distinct_id')
      .orderBy('event')
      .execute();
    const day = Math.floor((1_700_000_000 * 1000) / 86_400_000);
    expect(rows).toEqual([
      { distinct_id: 'user-00', event: 'Login', day, count: 8 },
      { distinct_id: 'user-01', event: 'Purchase', day, count: 8 },
      { distinct_id: 'user-02', event: 'Login', day, count: 7 },
      { distinct_id: 'user-03', event: 'Purchase', day, count: 7 },
    ]);
  });
});

describe('operations endpoints', () => {
  it('serves /healthz, /metrics, the OpenAPI document and its docs UI', async () => {
    expect(await (await fetch(`${svc.url}/healthz`)).json()).toMatchObject({ status: 'ok' });
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    expect(metrics).toMatch(/cohortcast_events_ingested_total\{endpoint="track"\} 30/);
    expect(metrics).toMatch(/cohortcast_profile_updates_total\{kind="user",operation="\$set"\} 25/);
    expect(metrics).toMatch(/cohortcast_http_request_duration_seconds_bucket\{.*route="\/track"/);
    const bad = await fetch(`${svc.url}/track?data=%%%`);
    expect(bad.status).toBe(400);
    expect(await (await fetch(`${svc.url}/metrics`)).text()).toMatch(/cohortcast_rejected_requests_total\{endpoint="track",reason="malformed"\} 1/);
    const doc = (await (await fetch(`${svc.url}/api/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/profiles', '/api/v1/profiles/{distinct_id}', '/api/v1/events', '/track', '/import']));
    const ui = await fetch(`${svc.url}/api/docs/`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);
  });
});

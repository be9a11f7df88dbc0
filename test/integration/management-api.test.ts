import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject } from '../../src/projects/projects.js';
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
    // In a project of its own: every test reads the shared project's data, none changes it.
    const own = await createProject(svc.service.store, 'Doomed');
    const ownApi = (path: string) => fetch(`${svc.url}${path}`, { headers: { authorization: `Bearer ${own.secret}` } });
    const engage = (update: Record<string, unknown>) =>
      fetch(`${svc.url}/engage`, {
        method: 'POST',
        body: `data=${b64({ $token: own.token, $distinct_id: 'doomed', ...update })}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }).then((r) => r.text());
    expect(await engage({ $set: { plan: 'pro' }, $ignore_time: true })).toBe('1');
    expect(await (await ownApi('/api/v1/profiles/doomed')).json()).toEqual({ $distinct_id: 'doomed', $properties: { plan: 'pro' } });
    expect(await engage({ $delete: '' })).toBe('1');
    const gone = await ownApi('/api/v1/profiles/doomed');
    expect(gone.status).toBe(404);
    expect(await gone.json()).toEqual({ error: { code: 'not_found', message: 'no profile with distinct_id "doomed"' } });
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

  it("pages one user's events across the days they were active, without a per-user index", async () => {
    const day = 86_400;
    const base = 1_600_000_000;
    // A project of its own, so the other tests' exact counts stay untouched.
    const own = await createProject(svc.service.store, 'Roaming');
    const collectOwn = async (query: string) => {
      const out: Ev[] = [];
      let cursor: string | null = null;
      do {
        const res = await fetch(`${svc.url}/api/v1/events?${query}${cursor ? `&cursor=${cursor}` : ''}`, { headers: { authorization: `Bearer ${own.secret}` } });
        const page = (await res.json()) as Page<Ev>;
        out.push(...page.results);
        cursor = page.next_cursor;
      } while (cursor && out.length < 100);
      return out;
    };
    const times = [base, base + 60, base + 2 * day, base + 2 * day + 1, base + 9 * day];
    const events = [
      ...times.map((t, i) => ({ event: 'Visit', properties: { token: own.token, distinct_id: 'roamer', time: t, $insert_id: `r${i}` } })),
      { event: 'Visit', properties: { token: own.token, distinct_id: 'someone-else', time: base + 30, $insert_id: 'o1' } },
    ];
    const res = await fetch(`${svc.url}/track`, { method: 'POST', body: `data=${b64(events)}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await res.text()).toBe('1');
    const all = await collectOwn('distinct_id=roamer&limit=2');
    expect(all.map((e) => e.time_ms / 1000)).toEqual(times);
    const window = await collectOwn(`distinct_id=roamer&from=${base + 61}&to=${base + 9 * day}&limit=1`);
    expect(window.map((e) => e.time_ms / 1000)).toEqual([base + 2 * day, base + 2 * day + 1]);
    expect(await collectOwn('distinct_id=nobody')).toEqual([]);
    // Newest first, across the same days, the window's ends as before.
    const newest = await collectOwn('distinct_id=roamer&order=desc&limit=2');
    expect(newest.map((e) => e.time_ms / 1000)).toEqual([...times].reverse());
    const windowDesc = await collectOwn(`distinct_id=roamer&order=desc&from=${base + 61}&to=${base + 9 * day}&limit=1`);
    expect(windowDesc.map((e) => e.time_ms / 1000)).toEqual([base + 2 * day + 1, base + 2 * day]);
  });

  it('lists newest first with order=desc, and refuses a cursor made in the other order', async () => {
    const all = await collect<Ev>('/api/v1/events?order=desc&limit=4');
    expect(all).toHaveLength(30);
    const ascending = await collect<Ev>('/api/v1/events?limit=7');
    expect(all.map((e) => e.id)).toEqual(ascending.map((e) => e.id).reverse());
    const first = (await (await svc.api('/api/v1/events?order=desc&limit=2')).json()) as Page<Ev>;
    const mixed = await svc.api(`/api/v1/events?limit=2&cursor=${first.next_cursor}`);
    expect(mixed.status).toBe(400);
    expect(((await mixed.json()) as { error: { message: string } }).error.message).toBe('this cursor continues a list newest first; ask with order=desc or start again without it');
  });

  it('filters by properties, as the profiles list does', async () => {
    const own = await createProject(svc.service.store, 'Carts');
    const events = [
      { event: 'Cart', properties: { token: own.token, distinct_id: 'a', time: 1_650_000_000, $insert_id: 'c1', plan: 'pro', items: 3 } },
      { event: 'Cart', properties: { token: own.token, distinct_id: 'b', time: 1_650_000_060, $insert_id: 'c2', plan: 'free', items: 3 } },
      { event: 'Cart', properties: { token: own.token, distinct_id: 'c', time: 1_650_000_120, $insert_id: 'c3', plan: 'pro', items: '3' } },
    ];
    expect(await (await fetch(`${svc.url}/track`, { method: 'POST', body: `data=${b64(events)}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } })).text()).toBe('1');
    const list = async (query: string) => {
      const res = await fetch(`${svc.url}/api/v1/events?${query}`, { headers: { authorization: `Bearer ${own.secret}` } });
      expect(res.status).toBe(200);
      return ((await res.json()) as Page<Ev>).results.map((e) => e.distinct_id);
    };
    expect(await list('property.plan=pro')).toEqual(['a', 'c']);
    expect(await list('property.plan=pro&order=desc')).toEqual(['c', 'a']);
    // 3 matches the number and the string "3".
    expect(await list('property.items=3')).toEqual(['a', 'b', 'c']);
    expect(await list('property.plan=pro&property.items=3&distinct_id=c')).toEqual(['c']);
    const bad = await svc.api('/api/v1/events?property.a%22b=1');
    expect(bad.status).toBe(400);
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
    // Counters are per service and other tests add to them: check what one request adds.
    const metric = async (series: RegExp) => {
      const text = await (await fetch(`${svc.url}/metrics`)).text();
      return Number(new RegExp(`^${series.source} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    };
    const ingested = /cohortcast_events_ingested_total\{endpoint="track"\}/;
    const sets = /cohortcast_profile_updates_total\{kind="user",operation="\$set"\}/;
    const malformed = /cohortcast_rejected_requests_total\{endpoint="track",reason="malformed"\}/;
    const before = { ingested: await metric(ingested), sets: await metric(sets), malformed: await metric(malformed) };
    expect(before.ingested).toBeGreaterThanOrEqual(30);
    expect(before.sets).toBeGreaterThanOrEqual(25);
    // Into a project of its own: the other tests count this project's events and profiles exactly.
    const other = await createProject(svc.service.store, 'Metrics');
    const post = (path: string, body: unknown) =>
      fetch(`${svc.url}${path}`, { method: 'POST', body: `data=${b64(body)}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await (await post('/track', { event: 'Counted', properties: { token: other.token, distinct_id: 'm' } })).text()).toBe('1');
    expect(await (await post('/engage', { $token: other.token, $distinct_id: 'm', $set: { a: 1 } })).text()).toBe('1');
    expect((await fetch(`${svc.url}/track?data=%%%`)).status).toBe(400);
    expect(await metric(ingested)).toBe(before.ingested + 1);
    expect(await metric(sets)).toBe(before.sets + 1);
    expect(await metric(malformed)).toBe(before.malformed + 1);
    expect(await (await fetch(`${svc.url}/metrics`)).text()).toMatch(/cohortcast_http_request_duration_seconds_bucket\{.*route="\/track"/);
    const doc = (await (await fetch(`${svc.url}/api/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/profiles', '/api/v1/profiles/{distinct_id}', '/api/v1/events', '/track', '/import', '/api/v1/messages', '/api/v1/messages/{id}/recipients']));
    const ui = await fetch(`${svc.url}/api/docs/`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);
  });
});

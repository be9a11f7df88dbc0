import fs from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject } from '../../src/projects/projects.js';
import os from 'node:os';
import { loadConfig } from '../../src/config.js';
import { openStore } from '../../src/store/database.js';
import { migrateToLatest } from '../../src/store/migrate.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { dialectUnderTest } from '../helpers/database.js';
import { waitFor } from '../helpers/wait.js';

/**
 * What a hostile user tried (issue: "no request may stall, crash or poison the service"), each as
 * a test on the database under test: one request never costs far more than its size, nothing is
 * stored that later work cannot read, and every refusal names the record or field and why.
 */
let svc: TestService;
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');
const DAY = 86_400_000;

beforeAll(async () => {
  svc = await startTestService((c) => {
    c.logLevel = 'error';
    c.metricsToken = 'scrape-me';
  });
});
afterAll(() => svc?.close());

const post = (p: string, body: string, headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }) => fetch(`${svc.url}${p}`, { method: 'POST', body, headers });
const api = <T = any>(p: string, method = 'GET', body?: unknown) => svc.json<T>(p, method, body);
type Failed = { index: number; field: string; message: string };

/** Runs `work` and answers the longest the event loop was blocked meanwhile, in ms. */
async function blocked(work: () => Promise<void>): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  try {
    await work();
  } finally {
    h.disable();
  }
  return h.max / 1e6;
}

/** JSON of `v` with every "HUGE_NUMBER" string written as the number 1e400. */
const withHugeNumber = (v: unknown) => JSON.stringify(v).replaceAll('"HUGE_NUMBER"', '1e400');

/** Nested `depth` levels: {"a": {"a": … 1}}. */
const nested = (depth: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
};

describe('profiles', () => {
  it('applies a $union of 12,000 items without blocking, each item once', async () => {
    const items = Array.from({ length: 12_000 }, (_, i) => `t${i % 9000}`);
    const ms = await blocked(async () => {
      const res = await post('/engage?verbose=1', `data=${b64({ $token: svc.project.token, $distinct_id: 'union', $union: { tags: items } })}`);
      expect(await res.json()).toEqual({ status: 1, error: null });
    });
    expect(ms).toBeLessThan(200);
    const profile = (await api('/api/v1/profiles/union')).body;
    expect(profile.$properties.tags).toHaveLength(9000);
  });

  it('refuses an update nested too deeply, a number out of range and oversized names, storing the valid updates beside them', async () => {
    const token = svc.project.token;
    const batch = [
      { $token: token, $distinct_id: 'deep', $set: { ok: 1 } },
      { $token: token, $distinct_id: 'deep', $set: { tree: nested(1500) } },
      { $token: token, $distinct_id: 'deep', $set: { n: 'HUGE_NUMBER' } },
      { $token: token, $distinct_id: 'deep', $set: { ['k'.repeat(900_000)]: 1 } },
      { $token: token, $distinct_id: 'x'.repeat(300), $set: { a: 1 } },
      { $token: token, $distinct_id: 'deep', $set: { fine: nested(30) } },
    ];
    // 1e400 as JSON text: JavaScript itself would write it as null.
    const res = await post('/engage?verbose=1', withHugeNumber(batch), { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { failed_records: Failed[] };
    expect(body.failed_records.map((f) => [f.index, f.field])).toEqual([
      [1, `$set.tree${'.a'.repeat(32)}`],
      [2, '$set.n'],
      [3, '$set'],
      [4, '$distinct_id'],
    ]);
    expect(body.failed_records[0]!.message).toMatch(/nested more than 32 levels deep$/);
    expect(body.failed_records[1]!.message).toMatch(/Infinity is out of range for a number/);
    expect(body.failed_records[2]!.message).toMatch(/is longer than 255 bytes$/);
    expect(body.failed_records[3]!.message).toBe("'$distinct_id' must be at most 255 bytes");
    const profile = (await api('/api/v1/profiles/deep')).body;
    expect(Object.keys(profile.$properties).sort()).toEqual(['$last_seen', 'fine', 'ok']);
  });

  it('keeps a profile within 1 MB: the update that would pass it is refused, the profile stays as it was', async () => {
    // Each value within the 256 KB a property may hold; the fifth takes the profile past 1 MB.
    const chunk = 'v'.repeat(250_000);
    const results: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await post('/engage?verbose=1', `data=${b64({ $token: svc.project.token, $distinct_id: 'big', $set: { [`p${i}`]: chunk } })}`);
      results.push(res.status);
      if (res.status === 400) expect(((await res.json()) as { failed_records: Failed[] }).failed_records[0]!.message).toMatch(/a profile may be at most 1048576 bytes of JSON/);
    }
    expect(results).toEqual([200, 200, 200, 200, 400]);
    // One value over 256 KB is refused on its own.
    const list = await post('/engage?verbose=1', `data=${b64({ $token: svc.project.token, $distinct_id: 'big2', $set: { long: 'x'.repeat(300_000) } })}`);
    expect(((await list.json()) as { failed_records: Failed[] }).failed_records[0]).toMatchObject({ field: 'properties.long', message: expect.stringMatching(/at most 262144 bytes/) });
    const profile = (await api('/api/v1/profiles/big')).body;
    expect(Object.keys(profile.$properties).sort()).toEqual(['$last_seen', 'p0', 'p1', 'p2', 'p3']);
    // Shrinking a profile is always allowed.
    expect((await post('/engage', `data=${b64({ $token: svc.project.token, $distinct_id: 'big', $unset: ['p0'] })}`)).status).toBe(200);
  });
});

describe('events', () => {
  it('refuses events nested too deeply, with long names, huge ids, out-of-range numbers or dated ahead, storing the rest', async () => {
    const token = svc.project.token;
    const e = (props: Record<string, unknown>, name = 'Hostile') => ({ event: name, properties: { token, distinct_id: 'h1', ...props } });
    const batch = [
      e({ ok: true }, 'Fine'),
      e({ tree: nested(1001) }),
      e({ ['n'.repeat(900_000)]: 1 }),
      { event: 'Hostile', properties: { token, distinct_id: 'd'.repeat(900_000) } },
      e({ big: 'HUGE_NUMBER' }),
      e({ time: Math.floor(Date.now() / 1000) + 2 * 3600 }),
      e({ time: Date.UTC(4821, 0, 1) }),
      e({ list: Array.from({ length: 300 }, (_, i) => i) }),
    ];
    const res = await post('/track?verbose=1', withHugeNumber(batch), { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { failed_records: Failed[] };
    expect(body.failed_records.map((f) => [f.index, f.field.slice(0, 20)])).toEqual([
      [1, 'properties.tree.a.a.'],
      [2, 'properties'],
      [3, 'properties.distinct_'],
      [4, 'properties.big'],
      [5, 'properties.time'],
      [6, 'properties.time'],
      [7, 'properties.list'],
    ]);
    expect(body.failed_records.find((f) => f.index === 5)!.message).toMatch(/more than 60 minutes in the future/);
    expect(body.failed_records.find((f) => f.index === 7)!.message).toMatch(/at most 255 items/);
    const events = (await api('/api/v1/events?distinct_id=h1')).body.results as { event: string }[];
    expect(events.map((x) => x.event)).toEqual(['Fine']);
  });

  it('does not count an event dated after today as done in the last day', async () => {
    const own = await createProject(svc.service.store, 'Future');
    const tomorrow = Math.floor(Date.now() / DAY) + 1;
    await svc.service.store.db.insertInto('profiles').values({ project_id: own.id, distinct_id: 'f', properties: '{}', sync_member: '{"mixpanel_distinct_id":"f"', created_at: 0, updated_at: 0 } as never).execute();
    await svc.service.store.db.insertInto('event_daily_counts').values({ project_id: own.id, distinct_id: 'f', event: 'Visit', day: tomorrow, count: 1 }).execute();
    const asOwn = (p: string, method = 'GET', body?: unknown) =>
      fetch(`${svc.url}${p}`, { method, headers: { authorization: `Bearer ${own.secret}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) }).then((r) => r.json() as Promise<any>);
    const cohort = await asOwn('/api/v1/cohorts', 'POST', { name: 'recent', definition: { event: 'Visit', within_days: 1 } });
    expect(await asOwn(`/api/v1/cohorts/${cohort.id}/count`)).toEqual({ count: 0 });
  });
});

describe('cohort definitions', () => {
  const create = (definition: unknown, name = 'c') => api('/api/v1/cohorts', 'POST', { name, definition });

  it('refuses a definition that would expand past the limit through the cohorts it names, quickly', async () => {
    const base = await create({ property: 'plan', op: 'equals', value: 'pro' });
    const level1 = await create({ or: Array.from({ length: 100 }, () => ({ cohort: base.body.id })) });
    expect(level1.status).toBe(201);
    const level2 = await create({ or: Array.from({ length: 100 }, () => ({ cohort: level1.body.id })) });
    expect(level2.status).toBe(400);
    expect(level2.body.error.message).toBe('definition: this definition expands to 10000 filters once the cohorts it names are put in; at most 2000');
    // A change to a named cohort that would push one naming it past the limit is refused too.
    const level1b = await create({ or: Array.from({ length: 15 }, () => ({ cohort: base.body.id })) });
    const level2b = await create({ or: Array.from({ length: 100 }, () => ({ cohort: level1b.body.id })) });
    expect(level2b.status).toBe(201);
    const grow = await api(`/api/v1/cohorts/${level1b.body.id}`, 'PATCH', { definition: { or: Array.from({ length: 30 }, () => ({ cohort: base.body.id })) } });
    expect(grow.status).toBe(400);
    expect(grow.body.error.message).toMatch(new RegExp(`^definition: cohort ${level2b.body.id}, which names this one, expands to 3000 filters`));
  });

  it('checks cycles in time linear in the definitions, naming the path', async () => {
    // A chain of cohorts each naming the previous one twice: a walk of every path doubles with each link.
    let prev = (await create({ property: 'x', op: 'set' })).body.id as number;
    const first = prev;
    for (let i = 0; i < 9; i++) prev = (await create({ and: [{ cohort: prev }, { or: [{ cohort: prev }, { property: 'y', op: 'set' }] }] })).body.id;
    const ms = await blocked(async () => {
      const cycle = await api(`/api/v1/cohorts/${first}`, 'PATCH', { definition: { cohort: prev } });
      expect(cycle.status).toBe(400);
      expect(cycle.body.error.message).toMatch(new RegExp(`^definition: cohort ${first} would include itself \\(${first} → ${prev} → .* → ${first}\\)$`));
    });
    expect(ms).toBeLessThan(200);
  });

  it('evaluates whatever it accepts: an "or" of 1,000 filters, 40 "in" filters of 1,000 values', async () => {
    const wide = await create({ or: Array.from({ length: 1000 }, (_, i) => ({ property: `p${i}`, op: 'equals', value: i })) });
    expect(wide.status).toBe(201);
    expect((await api(`/api/v1/cohorts/${wide.body.id}/count`)).status).toBe(200);
    const lists = await create({ and: Array.from({ length: 40 }, (_, i) => ({ property: `q${i}`, op: 'not_in', value: Array.from({ length: 1000 }, (_, j) => `v${j}`) })) });
    expect(lists.status).toBe(201);
    const count = await api(`/api/v1/cohorts/${lists.body.id}/count`);
    expect(count.status).toBe(200);
    expect(count.body.count).toBeGreaterThan(0);
  });
});

describe('stored data later work cannot read', () => {
  it('pauses a sync, once and with the reason, instead of failing it at every retry, and answers 422 for its cohort', async () => {
    const connection = await api('/api/v1/connections', 'POST', { name: 'never called', url: 'https://example.com/hook' });
    // A cohort written before the expansion limit existed (straight into the table): 200 × 100 filters.
    const base = await api('/api/v1/cohorts', 'POST', { name: 'base', definition: { property: 'plan', op: 'set' } });
    const wide = await api('/api/v1/cohorts', 'POST', { name: 'wide', definition: { or: Array.from({ length: 100 }, () => ({ cohort: base.body.id })) } });
    const legacy = await api('/api/v1/cohorts', 'POST', { name: 'legacy', definition: { property: 'plan', op: 'set' } });
    const huge = { or: Array.from({ length: 200 }, () => ({ cohort: wide.body.id })) };
    await svc.service.store.db.updateTable('cohorts').set({ definition: JSON.stringify(huge) }).where('id', '=', legacy.body.id).execute();
    const count = await api(`/api/v1/cohorts/${legacy.body.id}/count`);
    expect(count.status).toBe(422);
    expect(count.body.error.message).toMatch(new RegExp(`^cohort ${legacy.body.id} expands to 20000 filters`));
    const sync = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: legacy.body.id, connection_id: connection.body.id });
    const paused = await waitFor('the sync to pause', async () => {
      const s = (await api(`/api/v1/cohort-syncs/${sync.body.id}`)).body;
      return s.state === 'paused' ? s : undefined;
    });
    expect(paused.state_reason).toMatch(/expands to 20000 filters/);
    expect((await api(`/api/v1/cohort-syncs/${sync.body.id}/runs`)).body.results).toEqual([]);
    // The schedule records no failure to retry: the sync stopped.
    const schedule = await svc.service.store.db.selectFrom('schedules').selectAll().where('kind', '=', 'cohort-sync').where('key', '=', String(sync.body.id)).executeTakeFirstOrThrow();
    expect(schedule.last_error).toBeNull();
  });
});

describe.skipIf(dialectUnderTest !== 'sqlite')('an event SQLite cannot read, stored before the nesting limit', () => {
  it('pauses the sync whose cohort reads it, with the database’s reason, and answers 422 for the cohort', async () => {
    const own = await createProject(svc.service.store, 'Legacy events');
    const asOwn = (p: string, method = 'GET', body?: unknown) =>
      fetch(`${svc.url}${p}`, { method, headers: { authorization: `Bearer ${own.secret}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    await svc.service.store.db
      .insertInto('events')
      .values({ project_id: own.id, event: 'Deep', distinct_id: 'd', time: Date.now(), insert_id: null, dedup_key: 'legacy-deep', properties: JSON.stringify({ amount: 1, tree: nested(1500) }), received_at: Date.now() })
      .execute();
    const cohort = await asOwn('/api/v1/cohorts', 'POST', { name: 'reads it', definition: { event: 'Deep', within_days: 1, where: [{ property: 'amount', op: 'equals', value: 1 }] } });
    const count = await asOwn(`/api/v1/cohorts/${cohort.body.id}/count`);
    expect(count.status).toBe(422);
    expect(count.body.error.message).toMatch(new RegExp(`^cohort ${cohort.body.id} cannot be evaluated: `));
    const connection = await asOwn('/api/v1/connections', 'POST', { name: 'never called', url: 'https://example.com/hook' });
    const sync = await asOwn('/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.body.id, connection_id: connection.body.id });
    const paused = await waitFor('the sync to pause', async () => {
      const s = (await asOwn(`/api/v1/cohort-syncs/${sync.body.id}`)).body;
      return s.state === 'paused' ? s : undefined;
    });
    expect(paused.state_reason).toMatch(/^the cohort could not be evaluated: /);
  });
});

describe('the management API', () => {
  it('refuses unknown fields and wrong types, naming the field', async () => {
    const unknown = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: 1, connection_id: 1, interval_minute: 5 });
    expect(unknown).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', message: 'body.interval_minute: unknown field' } } });
    const coerced = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: '1', connection_id: 1 });
    expect(coerced).toMatchObject({ status: 400, body: { error: { message: 'body.cohort_id: must be integer' } } });
    const bool = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: 1, connection_id: 1, one_time: 'true' });
    expect(bool).toMatchObject({ status: 400, body: { error: { message: 'body.one_time: must be boolean' } } });
    const nestedField = await api('/api/v1/connections', 'POST', { name: 'n', url: 'https://example.com/h', basic_auth: { username: 'u', password: 'p', extra: 1 } });
    expect(nestedField).toMatchObject({ status: 400, body: { error: { message: 'body.basic_auth.extra: unknown field' } } });
    const query = await api('/api/v1/profiles?limt=5&property.plan=pro');
    expect(query).toMatchObject({ status: 400, body: { error: { message: 'querystring.limt: unknown field' } } });
  });

  it('takes a secret only as the whole credential', async () => {
    const res = await fetch(`${svc.url}/api/v1/profiles`, { headers: { authorization: `Bearer ${svc.project.secret} junk` } });
    expect(res.status).toBe(401);
  });

  it("says nothing about another project's connection", async () => {
    const other = await createProject(svc.service.store, 'Other');
    const asOther = (p: string, method: string, body?: unknown) =>
      fetch(`${svc.url}${p}`, { method, headers: { authorization: `Bearer ${other.secret}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const mine = await api('/api/v1/connections', 'POST', { name: 'mine', url: 'https://example.com/hook' });
    const cohort = await api('/api/v1/cohorts', 'POST', { name: 'all', definition: { property: 'plan', op: 'set' } });
    const sync = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.body.id, connection_id: mine.body.id });
    expect(sync.status).toBe(201);
    const res = await asOther(`/api/v1/connections/${mine.body.id}`, 'DELETE');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: `no connection ${mine.body.id} in this project` } });
  });

  it('asks for the metrics token when one is set', async () => {
    expect((await fetch(`${svc.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${svc.url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const ok = await fetch(`${svc.url}/metrics`, { headers: { authorization: 'Bearer scrape-me' } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/cohortcast_events_ingested_total/);
  });
});

describe('the data folder', () => {
  it('is made readable by its owner alone, with the database in it', async () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-perms-'));
    const dataDir = path.join(parent, 'made', 'here');
    const store = openStore(loadConfig({ dataDir }, { DATABASE_URL: '' }));
    try {
      await migrateToLatest(store);
      expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
      for (const name of ['cohortcast.db', 'cohortcast.db-wal']) expect(fs.statSync(path.join(dataDir, name)).mode & 0o777, name).toBe(0o600);
    } finally {
      await store.close();
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });
});

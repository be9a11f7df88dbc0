import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.js';

const require = createRequire(import.meta.url);
// The official client, unchanged: it is CommonJS and callback-based.
const Mixpanel = require('mixpanel') as typeof import('mixpanel');

let svc: TestService;
let client: ReturnType<typeof Mixpanel.init>;
let verboseClient: ReturnType<typeof Mixpanel.init>;

/** Wraps a callback-style client call; resolves with the error the client reports, if any. */
const call = (fn: (cb: (err?: Error | Error[] | null) => void) => void) =>
  new Promise<Error | Error[] | null | undefined>((resolve) => fn((err) => resolve(err)));

async function profile(distinctId: string) {
  const res = await svc.api(`/api/v1/profiles/${encodeURIComponent(distinctId)}`);
  return { status: res.status, body: (await res.json()) as { $properties: Record<string, unknown> } };
}

async function events(query: string) {
  const res = await svc.api(`/api/v1/events?${query}`);
  return ((await res.json()) as { results: { event: string; distinct_id: string; properties: Record<string, unknown>; time_ms: number }[] }).results;
}

beforeAll(async () => {
  svc = await startTestService();
  const { host } = new URL(svc.url);
  client = Mixpanel.init(svc.project.token, { host, protocol: 'http' });
  verboseClient = Mixpanel.init(svc.project.token, { host, protocol: 'http', verbose: true });
});
afterAll(() => svc?.close());

describe('the official mixpanel client, unchanged', () => {
  it('tracks single events and batches', async () => {
    expect(await call((cb) => client.track('Signed Up', { distinct_id: 'alice', plan: 'pro' }, cb))).toBeUndefined();
    expect(await call((cb) => verboseClient.track('Verbose', { distinct_id: 'alice' }, cb))).toBeUndefined();
    const batch = Array.from({ length: 120 }, (_, i) => ({
      event: 'Page',
      properties: { distinct_id: `batch-${i % 7}`, time: 1_700_000_000 + i, $insert_id: `ins-${i}` },
    }));
    expect(await call((cb) => client.track_batch(batch, cb))).toBeFalsy();
    const signed = await events('event=Signed%20Up');
    expect(signed).toHaveLength(1);
    expect(signed[0]!.properties).toMatchObject({ plan: 'pro', mp_lib: 'node' });
    expect(await events('event=Page&limit=1000')).toHaveLength(120);
  });

  it('reports an invalid token as an error, as Mixpanel does', async () => {
    const stranger = Mixpanel.init('0123456789abcdef0123456789abcdef', { host: new URL(svc.url).host, protocol: 'http', verbose: true });
    const err = await call((cb) => stranger.track('X', { distinct_id: 'x' }, cb));
    expect(String(err)).toMatch(/not the token of any project/);
  });

  it('applies every people operation', async () => {
    const id = 'bob';
    const ok = async (fn: (cb: (err?: Error | null) => void) => void) => expect(await call(fn)).toBeFalsy();
    await ok((cb) => client.people.set(id, { plan: 'free', $email: 'bob@example.com', tags: ['a'] }, cb));
    await ok((cb) => client.people.set_once(id, { plan: 'ignored', first_seen: 'monday' }, cb));
    await ok((cb) => client.people.increment(id, { logins: 2 }, cb));
    // The client also takes a bare property name (increment by 1); its typings do not say so.
    await ok((cb) => client.people.increment(id, 'logins' as unknown as Record<string, number>, cb));
    await ok((cb) => client.people.append(id, { pages: 'home' }, cb));
    await ok((cb) => client.people.append(id, { pages: 'cart' }, cb));
    await ok((cb) => client.people.union(id, { tags: ['a', 'b', 'b'] }, cb));
    await ok((cb) => client.people.remove(id, { pages: 'home' }, cb));
    await ok((cb) => client.people.unset(id, 'first_seen', cb));
    await ok((cb) => client.people.track_charge(id, 9.5, { sku: 'x' }, cb));
    let p = await profile(id);
    expect(p.status).toBe(200);
    expect(p.body.$properties).toMatchObject({ plan: 'free', $email: 'bob@example.com', logins: 3, pages: ['cart'], tags: ['a', 'b'] });
    expect(p.body.$properties).not.toHaveProperty('first_seen');
    expect(p.body.$properties.$transactions).toEqual([expect.objectContaining({ $amount: 9.5, sku: 'x' })]);
    await ok((cb) => client.people.clear_charges(id, cb));
    p = await profile(id);
    expect(p.body.$properties.$transactions).toEqual([]);
    await ok((cb) => client.people.delete_user(id, cb));
    expect((await profile(id)).status).toBe(404);
  });

  it('creates aliases that later events resolve through', async () => {
    expect(await call((cb) => client.alias('carol', 'carol-alias', cb))).toBeFalsy();
    expect(await call((cb) => client.track('After Alias', { distinct_id: 'carol-alias' }, cb))).toBeFalsy();
    const after = await events('event=After%20Alias');
    expect(after.map((e) => e.distinct_id)).toEqual(['carol']);
  });

  it('updates group profiles', async () => {
    const ok = async (fn: (cb: (err?: Error | null) => void) => void) => expect(await call(fn)).toBeFalsy();
    await ok((cb) => client.groups.set('company', 'acme', { tier: 'gold', seats: 5 }, cb));
    await ok((cb) => client.groups.set_once('company', 'acme', { tier: 'silver', founded: 1999 }, cb));
    await ok((cb) => client.groups.union('company', 'acme', { regions: ['eu', 'us'] }, cb));
    await ok((cb) => client.groups.remove('company', 'acme', { regions: 'eu' }, cb));
    await ok((cb) => client.groups.unset('company', 'acme', 'seats', cb));
    const row = await svc.service.store.db
      .selectFrom('group_profiles')
      .select('properties')
      .where('group_key', '=', 'company')
      .where('group_id', '=', 'acme')
      .executeTakeFirstOrThrow();
    const props = typeof row.properties === 'string' ? JSON.parse(row.properties) : row.properties;
    expect(props).toEqual({ tier: 'gold', founded: 1999, regions: ['us'] });
    await ok((cb) => client.groups.delete_group('company', 'acme', cb));
    const gone = await svc.service.store.db.selectFrom('group_profiles').select('group_id').where('group_id', '=', 'acme').execute();
    expect(gone).toEqual([]);
  });
});

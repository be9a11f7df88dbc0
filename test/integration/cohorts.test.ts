import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * Cohort evaluation end to end, on the database the suite runs against: profiles and events go in
 * through the Mixpanel ingestion API, cohorts are made through /api/v1/cohorts, and their members
 * are checked against what the data says by hand.
 */
let svc: TestService;
const DAY = 86_400_000;
const NOW = Date.now();
const user = (i: number) => `u${String(i).padStart(2, '0')}`;
const dateDaysAgo = (d: number) => new Date(NOW - d * DAY).toISOString().slice(0, 19);

beforeAll(async () => {
  svc = await startTestService();
  const token = svc.project.token;
  // u00…u11: plan pro every third (u11 has none), seats = i (u10: the string "ten"), beta on even users,
  // signed up i × 10 days ago, an e-mail address (u05's in capitals).
  const profiles = Array.from({ length: 12 }, (_, i) => ({
    $token: token,
    $distinct_id: user(i),
    $set: {
      ...(i === 11 ? {} : { plan: i % 3 === 0 ? 'pro' : 'free' }),
      seats: i === 10 ? 'ten' : i,
      beta: i % 2 === 0,
      signup: dateDaysAgo(i * 10),
      $email: i === 5 ? 'Alice@Example.COM' : `${user(i)}@example.com`,
    },
  }));
  const event = (name: string, who: number, daysAgo: number, props: Record<string, unknown> = {}, n = 0) => ({
    event: name,
    properties: { distinct_id: user(who), time: Math.floor((NOW - daysAgo * DAY) / 1000), $insert_id: `${name}-${who}-${daysAgo}-${n}`, ...props },
  });
  const events = [
    // Purchases in the last 30 days: u00 three (amounts 20, 5, 50), u01 one, u03 two (15 each); u02 two, 40 days ago.
    event('Purchase', 0, 0, { amount: 20 }, 1),
    event('Purchase', 0, 1, { amount: 5 }, 2),
    event('Purchase', 0, 2, { amount: 50 }, 3),
    event('Purchase', 1, 3, { amount: 5 }),
    event('Purchase', 3, 0, { amount: 15 }, 1),
    event('Purchase', 3, 0, { amount: 15 }, 2),
    event('Purchase', 2, 40, { amount: 99 }, 1),
    event('Purchase', 2, 40, { amount: 99 }, 2),
    // One login each for u00…u05, today.
    ...[0, 1, 2, 3, 4, 5].map((i) => event('Login', i, 0)),
  ];
  const engage = await fetch(`${svc.url}/engage`, {
    method: 'POST',
    body: `data=${Buffer.from(JSON.stringify(profiles)).toString('base64')}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  expect(await engage.text()).toBe('1');
  const imported = await fetch(`${svc.url}/import?strict=1`, {
    method: 'POST',
    body: JSON.stringify(events),
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${svc.project.secret}:`).toString('base64')}` },
  });
  expect(await imported.json()).toMatchObject({ code: 200, num_records_imported: events.length });
});
afterAll(() => svc?.close());

async function create(definition: unknown, name = 'test cohort'): Promise<{ status: number; body: any }> {
  const res = await svc.api('/api/v1/cohorts', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, description: 'made by a test', definition }),
  });
  return { status: res.status, body: await res.json() };
}

async function members(id: number, limit = 5): Promise<string[]> {
  const all: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 50; pages++) {
    const res = await svc.api(`/api/v1/cohorts/${id}/members?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as { results: { $distinct_id: string; $properties: Record<string, unknown> }[]; next_cursor: string | null };
    all.push(...page.results.map((m) => m.$distinct_id));
    if (!page.next_cursor) return all;
    cursor = page.next_cursor;
  }
  throw new Error('paging did not end');
}

async function evaluate(definition: unknown): Promise<string[]> {
  const made = await create(definition);
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  const list = await members(made.body.id);
  const count = await svc.api(`/api/v1/cohorts/${made.body.id}/count`);
  expect(await count.json()).toEqual({ count: list.length });
  return list;
}

const users = (...ids: number[]) => ids.map(user);
const all = users(...Array.from({ length: 12 }, (_, i) => i));
const except = (...ids: number[]) => all.filter((u) => !users(...ids).includes(u));

describe('cohort definitions: profile properties', () => {
  it.each([
    ['equals a string', { property: 'plan', op: 'equals', value: 'pro' }, users(0, 3, 6, 9)],
    ['not equals (users without the property included)', { property: 'plan', op: 'not_equals', value: 'pro' }, except(0, 3, 6, 9)],
    ['equals a boolean', { property: 'beta', op: 'equals', value: true }, users(0, 2, 4, 6, 8, 10)],
    ['equals a number', { property: 'seats', op: 'equals', value: 4 }, users(4)],
    ['greater than (numbers only: "ten" is not one)', { property: 'seats', op: 'greater_than', value: 7 }, users(8, 9, 11)],
    ['less than', { property: 'seats', op: 'less_than', value: 2 }, users(0, 1)],
    ['between, both ends included', { property: 'seats', op: 'between', value: [2, 4] }, users(2, 3, 4)],
    ['contains, ignoring case', { property: '$email', op: 'contains', value: 'EXAMPLE.com' }, all],
    ['does not contain', { property: '$email', op: 'not_contains', value: 'alice' }, except(5)],
    ['set', { property: 'plan', op: 'set' }, except(11)],
    ['not set', { property: 'plan', op: 'not_set' }, users(11)],
    ['in a list', { property: 'plan', op: 'in', value: ['pro', 'enterprise'] }, users(0, 3, 6, 9)],
    ['not in a list', { property: 'seats', op: 'not_in', value: [0, 1, 2, 'ten'] }, except(0, 1, 2, 10)],
    ['more than 21 days ago', { property: 'signup', op: 'before', value: { days_ago: 21 } }, except(0, 1, 2)],
    ['within the last 21 days', { property: 'signup', op: 'after', value: { days_ago: 21 } }, users(0, 1, 2)],
    ['after an absolute date', { property: 'signup', op: 'after', value: dateDaysAgo(55).slice(0, 10) }, users(0, 1, 2, 3, 4, 5)],
    ['between two dates', { property: 'signup', op: 'between_dates', value: [{ days_ago: 45 }, { days_ago: 15 }] }, users(2, 3, 4)],
  ])('%s', async (_name, definition, expected) => {
    expect(await evaluate(definition)).toEqual(expected);
  });
});

describe('cohort definitions: behaviour', () => {
  it.each([
    ['did an event at least N times in the last D days', { event: 'Purchase', count: { op: 'at_least', value: 2 }, within_days: 30 }, users(0, 3)],
    ['did an event at all (no count given)', { event: 'Purchase', within_days: 30 }, users(0, 1, 3)],
    ['a wider window reaches older events', { event: 'Purchase', count: { op: 'at_least', value: 2 }, within_days: 60 }, users(0, 2, 3)],
    ['at most N times (users who never did it included)', { event: 'Purchase', count: { op: 'at_most', value: 1 }, within_days: 30 }, except(0, 3)],
    ['exactly N times', { event: 'Purchase', count: { op: 'exactly', value: 1 }, within_days: 30 }, users(1)],
    ['exactly zero times', { event: 'Purchase', count: { op: 'exactly', value: 0 }, within_days: 30 }, except(0, 1, 3)],
    ['did not do an event', { not: { event: 'Login', within_days: 7 } }, users(6, 7, 8, 9, 10, 11)],
    [
      'narrowed by event properties',
      { event: 'Purchase', count: { op: 'at_least', value: 2 }, within_days: 30, where: [{ property: 'amount', op: 'greater_than', value: 16 }] },
      users(0),
    ],
    ['narrowed by an equality on an event property', { event: 'Purchase', within_days: 30, where: [{ property: 'amount', op: 'equals', value: 5 }] }, users(0, 1)],
  ])('%s', async (_name, definition, expected) => {
    expect(await evaluate(definition)).toEqual(expected);
  });
});

describe('cohort definitions: combinations and other cohorts', () => {
  it('nests and / or / not', async () => {
    const definition = {
      and: [
        { property: 'plan', op: 'equals', value: 'free' },
        { or: [{ property: 'seats', op: 'less_than', value: 2 }, { event: 'Login', within_days: 7 }] },
        { not: { property: '$email', op: 'contains', value: 'alice' } },
      ],
    };
    expect(await evaluate(definition)).toEqual(users(1, 2, 4));
  });

  it('uses another cohort as a filter, refuses a cycle, and will not delete a cohort in use', async () => {
    const pro = await create({ property: 'plan', op: 'equals', value: 'pro' }, 'pro');
    const proBeta = await create({ and: [{ cohort: pro.body.id }, { property: 'beta', op: 'equals', value: true }] }, 'pro beta');
    expect(proBeta.status).toBe(201);
    expect(await members(proBeta.body.id)).toEqual(users(0, 6));

    const cycle = await svc.api(`/api/v1/cohorts/${pro.body.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ definition: { or: [{ property: 'plan', op: 'set' }, { cohort: proBeta.body.id }] } }),
    });
    expect(cycle.status).toBe(400);
    expect(await cycle.json()).toEqual({
      error: { code: 'invalid_definition', message: `definition: cohort ${pro.body.id} would include itself (${pro.body.id} → ${proBeta.body.id} → ${pro.body.id})`, path: '/definition' },
    });

    const usage = await svc.json(`/api/v1/cohorts/${pro.body.id}/usage`);
    expect(usage).toEqual({ status: 200, body: { cohorts: [proBeta.body.id], cohort_syncs: [], subscriptions: [], messages: [] } });
    expect((await svc.json('/api/v1/cohorts/424242/usage')).status).toBe(404);
    const inUse = await svc.api(`/api/v1/cohorts/${pro.body.id}`, { method: 'DELETE' });
    expect(inUse.status).toBe(409);
    expect(((await inUse.json()) as any).error.message).toBe(`cohort ${pro.body.id} is used by cohort ${proBeta.body.id}; change or delete those first`);

    // A change to the named cohort changes the one that uses it.
    const changed = await svc.api(`/api/v1/cohorts/${pro.body.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ definition: { property: 'plan', op: 'equals', value: 'free' }, name: 'free now' }),
    });
    expect(changed.status).toBe(200);
    expect(await changed.json()).toMatchObject({ id: pro.body.id, name: 'free now', description: 'made by a test' });
    expect(await members(proBeta.body.id)).toEqual(users(2, 4, 8, 10));

    expect((await svc.api(`/api/v1/cohorts/${proBeta.body.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await svc.api(`/api/v1/cohorts/${pro.body.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await svc.api(`/api/v1/cohorts/${pro.body.id}`)).status).toBe(404);
  });

  it('refuses a cohort that does not exist in the project', async () => {
    const made = await create({ cohort: 999_999 });
    expect(made.status).toBe(400);
    expect(made.body).toEqual({ error: { code: 'invalid_definition', message: 'definition: names cohort 999999, which does not exist in this project', path: '/definition' } });
  });
});

describe('/api/v1/cohorts', () => {
  it('names the offending path of an invalid definition', async () => {
    const made = await create({ and: [{ property: 'plan', op: 'equals', value: 'pro' }, { event: 'Purchase', within_days: 0 }] });
    expect(made.status).toBe(400);
    expect(made.body).toEqual({ error: { code: 'invalid_definition', message: 'definition.and[1].within_days: expected a whole number from 1 to 3650, got 0', path: '/definition/and/1/within_days' } });
  });

  it('gives the place at fault as a JSON pointer, an unknown key of any spelling included', async () => {
    const unknown = await create({ or: [{ property: 'plan', op: 'set', 'a.b/c~[0]': 1 }] });
    expect(unknown.body.error).toMatchObject({ message: 'definition.or[0].a.b/c~[0]: unknown field; allowed here: property, op', path: '/definition/or/0/a.b~1c~0[0]' });
    const badName = await svc.json('/api/v1/cohorts', 'POST', { name: ' ', definition: { property: 'plan', op: 'set' } });
    expect(badName).toEqual({ status: 400, body: { error: { code: 'invalid_cohort', message: 'name: expected 1-200 characters', path: '/name' } } });
    // A PATCH names the place the same way; a refusal with no one place at fault has no path.
    const made = await create({ property: 'plan', op: 'set' });
    const patched = await svc.json(`/api/v1/cohorts/${made.body.id}`, 'PATCH', { definition: { not: { event: 'Login', within_days: 7, count: { op: 'most', value: 1 } } } });
    expect(patched.body.error).toMatchObject({ code: 'invalid_definition', path: '/definition/not/count/op' });
    expect((await svc.json('/api/v1/cohorts/424242')).body).toEqual({ error: { code: 'not_found', message: 'no cohort 424242 in this project' } });
  });

  it('creates, shows, lists and pages cohorts', async () => {
    const made = await create({ property: 'plan', op: 'equals', value: 'pro' }, 'listed');
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ name: 'listed', description: 'made by a test', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    expect(made.body.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    const one = await svc.api(`/api/v1/cohorts/${made.body.id}`);
    expect(await one.json()).toEqual(made.body);
    const ids: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await svc.api(`/api/v1/cohorts?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      const page = (await res.json()) as { results: { id: number }[]; next_cursor: string | null };
      ids.push(...page.results.map((c) => c.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(ids).toContain(made.body.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
  });

  it('answers 404 for a cohort of another project or none', async () => {
    const res = await svc.api('/api/v1/cohorts/424242/members');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no cohort 424242 in this project' } });
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialectUnderTest } from '../helpers/database.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * Reports checked against values computed by hand from a small, fixed history imported through
 * /import: insights from the daily count table and from the events, with filters, a cohort-free
 * profile filter, breakdowns, hours and a time zone whose day has 25 hours; funnels with a window,
 * both measures and a breakdown.
 */
let svc: TestService;
const T = Date.UTC(2026, 10, 1); // Sunday 1 November 2026, 00:00 UTC; Los Angeles leaves daylight time that night
const H = 3_600_000;
const D = 24 * H;

beforeAll(async () => {
  svc = await startTestService((c) => {
    c.logLevel = 'error';
  });
  const ev = (event: string, user: string, time: number, props: Record<string, unknown> = {}) => ({ event, properties: { distinct_id: user, time, $insert_id: `${event}-${user}-${time}`, ...props } });
  const events = [
    ev('Purchase', 'a', T + 11 * H, { amount: 10, store: 'web' }),
    ev('Purchase', 'a', T + 12 * H, { amount: 30, store: 'web' }),
    ev('Purchase', 'a', T + D + H, { amount: 5, store: 'app' }),
    ev('Purchase', 'b', T + 8 * H, { amount: 20, store: 'app' }),
    ev('Purchase', 'b', T + 2 * D + 5 * H, { amount: 40, store: 'web' }),
    ev('Purchase', 'c', T + D + 3 * H, { amount: 7, store: 'web' }),
    ev('View', 'a', T + 10 * H),
    ev('View', 'b', T + 7 * H),
    ev('View', 'c', T + D + 5 * H),
  ];
  const basic = `Basic ${Buffer.from(`${svc.project.secret}:`).toString('base64')}`;
  const res = await fetch(`${svc.url}/import?strict=1`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basic }, body: JSON.stringify(events) });
  expect(res.status).toBe(200);
  const profiles = [
    { $token: svc.project.token, $distinct_id: 'a', $set: { country: 'US', plan: 'pro' } },
    { $token: svc.project.token, $distinct_id: 'b', $set: { country: 'US', plan: 'free' } },
    { $token: svc.project.token, $distinct_id: 'c', $set: { country: 'NZ', plan: 'pro' } },
  ];
  const engage = await fetch(`${svc.url}/engage`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `data=${Buffer.from(JSON.stringify(profiles)).toString('base64')}` });
  expect(await engage.text()).toBe('1');
});

afterAll(async () => {
  await svc?.close();
});

const api = <T = any>(p: string, method = 'GET', body?: unknown) => svc.json<T>(p, method, body);

async function result(type: 'insights' | 'funnels', query: unknown, from = T, to = T + 3 * D) {
  const made = await api('/api/v1/reports', 'POST', { name: `${type} ${JSON.stringify(query)}`.slice(0, 200), type, query });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  const res = await api(`/api/v1/reports/${made.body.id}/result?from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { source: string; buckets: { from: string; to: string }[]; series: { segment: string; values: (number | null)[] }[] };
}

const values = (r: { series: { segment: string; values: (number | null)[] }[] }) => Object.fromEntries(r.series.map((s) => [s.segment, s.values]));

describe(`reports on ${dialectUnderTest}`, () => {
  it('insights: totals and uniques per day from the daily count table', async () => {
    const total = await result('insights', { event: 'Purchase', measure: { type: 'total' }, interval: 'day' });
    expect(total.source).toBe('daily_counts');
    expect(total.buckets.map((b) => b.from)).toEqual([T, T + D, T + 2 * D].map((t) => new Date(t).toISOString()));
    expect(values(total)).toEqual({ $overall: [3, 2, 1] });
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'unique' }, interval: 'day' }))).toEqual({ $overall: [2, 2, 1] });
    // Every event: the views too.
    expect(values(await result('insights', { measure: { type: 'total' }, interval: 'day' }))).toEqual({ $overall: [5, 3, 1] });
    // A profile filter joins the profiles.
    const pros = await result('insights', { event: 'Purchase', measure: { type: 'total' }, profile_where: [{ property: 'plan', op: 'equals', value: 'pro' }], interval: 'day' });
    expect(pros.source).toBe('daily_counts');
    expect(values(pros)).toEqual({ $overall: [2, 2, 0] });
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'total' }, breakdown: { property: 'country', on: 'profile' }, interval: 'day' }))).toEqual({ US: [3, 1, 1], NZ: [0, 1, 0] });
    // Weeks start on Monday: 2 November holds a, c and b (1 November, a Sunday, is the week before).
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'unique' }, interval: 'week' }, T + D, T + 3 * D))).toEqual({ $overall: [3] });
  });

  it('insights: sums, averages, minimums and maximums of a property, event filters and breakdowns from the events', async () => {
    const sum = await result('insights', { event: 'Purchase', measure: { type: 'sum', property: 'amount' }, interval: 'day' });
    expect(sum.source).toBe('events');
    expect(values(sum)).toEqual({ $overall: [60, 12, 40] });
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'average', property: 'amount' }, interval: 'day' }))).toEqual({ $overall: [20, 6, 40] });
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'min', property: 'amount' }, interval: 'day' }))).toEqual({ $overall: [10, 5, 40] });
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'max', property: 'amount' }, interval: 'day' }))).toEqual({ $overall: [30, 7, 40] });
    // An average of no events is null, not 0.
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'average', property: 'amount' }, interval: 'day' }, T + 3 * D, T + 4 * D))).toEqual({ $overall: [null] });
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'total' }, where: [{ property: 'store', op: 'equals', value: 'web' }], interval: 'day' }))).toEqual({ $overall: [2, 1, 1] });
    // The top segment only.
    expect(values(await result('insights', { event: 'Purchase', measure: { type: 'total' }, breakdown: { property: 'store', on: 'event', limit: 1 }, interval: 'day' }))).toEqual({ web: [2, 1, 1] });
    const hours = await result('insights', { event: 'Purchase', measure: { type: 'total' }, interval: 'hour' }, T + 7 * H, T + 13 * H);
    expect(values(hours)).toEqual({ $overall: [0, 1, 0, 0, 1, 1] });
  });

  it("insights in a time zone: a day is the zone's midnight to midnight, 25 hours when daylight time ends", async () => {
    const la = await result('insights', { event: 'Purchase', measure: { type: 'total' }, interval: 'day', timezone: 'America/Los_Angeles' }, T + 7 * H, T + 2 * D + 8 * H);
    expect(la.source).toBe('events');
    expect(la.buckets).toEqual([
      { from: new Date(T + 7 * H).toISOString(), to: new Date(T + D + 8 * H).toISOString() },
      { from: new Date(T + D + 8 * H).toISOString(), to: new Date(T + 2 * D + 8 * H).toISOString() },
    ]);
    expect(values(la)).toEqual({ $overall: [5, 1] });
  });

  it('funnels: conversion and completions within the window, per bucket of first steps, with a breakdown', async () => {
    const steps = [{ event: 'View' }, { event: 'Purchase' }];
    expect(values(await result('funnels', { steps, window_hours: 2, measure: 'conversion', interval: 'day' }))).toEqual({ $overall: [100, 0, null] });
    expect(values(await result('funnels', { steps, window_hours: 2, measure: 'completed', interval: 'day' }))).toEqual({ $overall: [2, 0, 0] });
    expect(values(await result('funnels', { steps, window_hours: 2, measure: 'conversion', breakdown: { property: 'plan', on: 'profile' }, interval: 'day' }))).toEqual({ pro: [100, 0, null], free: [100, null, null] });
    // A step's filter: only web purchases (b's 08:00 purchase was in the app).
    expect(values(await result('funnels', { steps: [{ event: 'View' }, { event: 'Purchase', where: [{ property: 'store', op: 'equals', value: 'web' }] }], window_hours: 2, measure: 'completed', interval: 'day' }))).toEqual({ $overall: [1, 0, 0] });
  });

  it('refuses bad queries with the path, and a deleted report is a 404', async () => {
    const bad: [unknown, string][] = [
      [{ name: 'x', type: 'pie', query: {} }, 'body.type'],
      [{ name: 'x', type: 'insights', query: { measure: { type: 'median' } } }, 'query.measure.type: expected one of'],
      [{ name: 'x', type: 'insights', query: { measure: { type: 'sum' } } }, 'query.measure.property'],
      [{ name: 'x', type: 'insights', query: { interval: 'minute' } }, 'query.interval'],
      [{ name: 'x', type: 'insights', query: { timezone: 'Moon/Base' } }, 'query.timezone'],
      [{ name: 'x', type: 'insights', query: { where: [{ property: 'a', op: 'resembles', value: 1 }] } }, 'query.where[0].op'],
      [{ name: 'x', type: 'insights', query: { cohort_id: 99999 } }, 'query.cohort_id: no cohort 99999'],
      [{ name: 'x', type: 'funnels', query: { steps: [{ event: 'A' }] } }, 'query.steps: expected 2 to 20 steps'],
      [{ name: 'x', type: 'funnels', query: { steps: [{ event: 'A' }, { event: 'B' }], window_days: 0 } }, 'query.window_days'],
    ];
    for (const [body, message] of bad) {
      const res = await api('/api/v1/reports', 'POST', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.message).toContain(message);
    }
    const made = await api('/api/v1/reports', 'POST', { name: 'gone', type: 'insights', query: {} });
    expect((await api(`/api/v1/reports/${made.body.id}/result?from=2026-01-02&to=2026-01-01`)).status).toBe(400);
    expect((await api(`/api/v1/reports/${made.body.id}`, 'DELETE')).status).toBe(204);
    expect((await api(`/api/v1/reports/${made.body.id}/result`)).status).toBe(404);
  });
});

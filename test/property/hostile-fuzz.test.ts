import '../helpers/fast-check-seed.js';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialectUnderTest } from '../helpers/database.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * Hostile values (deep nesting, size, long names, Unicode, numbers beyond a double, duplicates)
 * in every ingestion route and in the management routes, on the database under test. Whatever
 * comes in: a 2xx, or a 4xx saying why, never a 5xx; the event loop never blocked longer than
 * 200 ms (the service runs in this process, so this process's loop is the service's); memory
 * stays bounded; a cohort accepted with 201 can be evaluated.
 */
let svc: TestService;
let loop: IntervalHistogram;
let rssAtStart = 0;
const MAX_BLOCK_MS = 200;
const MAX_RSS_GROWTH_MB = 400;

beforeAll(async () => {
  svc = await startTestService((c) => {
    c.logLevel = 'fatal';
  });
  rssAtStart = process.memoryUsage().rss;
  loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
});
afterAll(async () => {
  loop?.disable();
  await svc?.close();
});

/** A JSON text whose "HUGE" strings are the number 1e400 (JavaScript itself cannot write one). */
const json = (v: unknown) => JSON.stringify(v).replaceAll('"HUGE"', '1e400').replaceAll('"TINY"', '-1e400');

const nest = (depth: number, leaf: unknown, list: boolean): unknown => {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = list ? [v] : { k: v };
  return v;
};

const oddText = fc.string({ unit: fc.constantFrom('a', 'é', '\u{1f600}', '\ud800', '\u2028', '"', '\\', ' ', '$'), maxLength: 12 });
const scalar = fc.oneof(oddText, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.constantFrom('HUGE', 'TINY', 1e308, -0, 2 ** 53 + 1));

/** A value a hostile client might send: deep, wide, long, or odd. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  scalar,
  fc.record({ depth: fc.integer({ min: 1, max: 1500 }), list: fc.boolean(), leaf: scalar }).map(({ depth, list, leaf }) => nest(depth, leaf, list)),
  fc.integer({ min: 1, max: 400_000 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 1, max: 3000 }).map((n) => Array.from({ length: n }, (_, i) => i % 7)),
  fc.integer({ min: 1, max: 3000 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))),
  fc.array(oddText, { maxLength: 50 }).map((a) => [...a, ...a]),
);
const hostileName = fc.oneof(oddText.filter((s) => s.length > 0), fc.integer({ min: 200, max: 300_000 }).map((n) => 'n'.repeat(n)));

async function expectCalm(res: Response, what: string): Promise<string> {
  const text = await res.text();
  expect(res.status, `${what} answered ${res.status}: ${text.slice(0, 300)}`).toBeLessThan(500);
  expect(loop.max / 1e6, `the event loop was blocked by ${what}`).toBeLessThan(MAX_BLOCK_MS);
  loop.reset();
  return text;
}

const form = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `data=${encodeURIComponent(Buffer.from(json(body)).toString('base64'))}` });

describe(`hostile input on ${dialectUnderTest}`, () => {
  it('ingestion: every route answers a hostile record with a 2xx or a 4xx naming it, never a 5xx, never blocking', async () => {
    const token = svc.project.token;
    const basic = `Basic ${Buffer.from(`${svc.project.secret}:`).toString('base64')}`;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/track', '/engage', '/groups', '/import'), hostileName, hostileValue, fc.oneof(oddText, hostileName), async (route, name, value, id) => {
        loop.reset();
        let res: Response;
        if (route === '/track') res = await fetch(`${svc.url}/track?verbose=1`, form([{ event: 'E', properties: { token, distinct_id: id, [name]: value } }, { event: 'Ok', properties: { token, distinct_id: 'fine' } }]));
        else if (route === '/engage') res = await fetch(`${svc.url}/engage?verbose=1`, form([{ $token: token, $distinct_id: id, $set: { [name]: value } }, { $token: token, $distinct_id: id, $union: { [name]: [value, value] } }]));
        else if (route === '/groups') res = await fetch(`${svc.url}/groups?verbose=1`, form([{ $token: token, $group_key: 'company', $group_id: id, $set: { [name]: value } }]));
        else {
          res = await fetch(`${svc.url}/import?strict=1`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: basic },
            body: json([{ event: 'I', properties: { time: Math.floor(Date.now() / 1000), distinct_id: id, $insert_id: 'i1', [name]: value } }]),
          });
        }
        const text = await expectCalm(res, `${route} with a hostile value`);
        if (res.status >= 400) expect(text).toMatch(/failed_records|error/);
      }),
      { numRuns: 120 },
    );
    // Still answering, and what was stored can still be read.
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
    expect((await svc.api('/api/v1/events?limit=1000')).status).toBe(200);
    expect((await svc.api('/api/v1/profiles?limit=1000')).status).toBe(200);
  });

  it('management: hostile bodies, queries and definitions get a 2xx or a 4xx saying why; an accepted cohort can be evaluated', async () => {
    const filter = fc.oneof(
      fc.record({ property: hostileName, op: fc.constantFrom('equals', 'in', 'not_in', 'contains', 'set', 'between'), value: hostileValue }),
      fc.record({ event: hostileName, within_days: fc.oneof(fc.integer(), fc.constant('HUGE')), where: fc.array(fc.record({ property: oddText, op: fc.constant('equals'), value: scalar }), { maxLength: 3 }) }),
    );
    const definition: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        filter,
        // Wide, but only of leaves: a wide tree of wide trees would be the generator's own explosion.
        fc.record({ or: fc.array(fc.record({ property: oddText, op: fc.constant('equals'), value: scalar }), { minLength: 1, maxLength: 1200 }) }),
        fc.record({ and: fc.array(tie('node'), { minLength: 1, maxLength: 4 }) }),
        fc.record({ not: tie('node') }),
        fc.record({ cohort: fc.integer({ min: 1, max: 50 }) }),
      ),
    })).node;
    const body = fc.oneof(
      definition.map((d) => ({ path: '/api/v1/cohorts', body: { name: 'fuzz', definition: d } })),
      fc.record({ name: fc.oneof(oddText, hostileName), url: fc.oneof(oddText, fc.constant('https://example.com/h')), headers: fc.dictionary(oddText, oddText, { maxKeys: 60 }), timeout_ms: scalar }).map((b) => ({ path: '/api/v1/connections', body: b })),
      fc.record({ cohort_id: scalar, connection_id: scalar, properties_to_export: fc.array(hostileName, { maxLength: 50 }), interval_minutes: scalar, extra: fc.option(scalar) }).map((b) => ({ path: '/api/v1/cohort-syncs', body: b })),
      fc
        .record({
          name: fc.oneof(oddText, hostileName),
          event_types: fc.array(fc.oneof(fc.constantFrom('profile.created', 'event.ingested', 'cohort.member_entered'), oddText), { maxLength: 60 }),
          cohort_ids: fc.array(scalar, { maxLength: 120 }),
          event_filter: fc.oneof(scalar, fc.record({ events: fc.array(oddText, { maxLength: 120 }), where: fc.array(filter, { maxLength: 60 }) })),
          channels: fc.array(
            fc.record({
              type: fc.oneof(fc.constantFrom('webhook', 'slack', 'email', 'sms'), oddText),
              connection_id: scalar,
              to: fc.array(oddText, { maxLength: 60 }),
              from: oddText,
              payload_template: fc.oneof(oddText, fc.constantFrom('{% for a in (1..99999999) %}x{% endfor %}', '{{ data | tojson }}', '{% if %}', '{{'.repeat(5000))),
            }, { requiredKeys: ['type'] }),
            { maxLength: 12 },
          ),
        }, { requiredKeys: [] })
        .map((b) => ({ path: '/api/v1/subscriptions', body: b })),
      fc
        .record({
          name: fc.oneof(oddText, hostileName),
          cohort_id: scalar,
          definition: definition,
          connection_id: scalar,
          schedule: fc.oneof(
            scalar,
            fc.record({ type: fc.oneof(fc.constantFrom('asap', 'scheduled', 'recurring'), oddText), at: fc.oneof(oddText, fc.constantFrom('09:00', '24:00', '9:5')), days_of_week: fc.array(fc.oneof(fc.constantFrom('mon', 'wed'), oddText), { maxLength: 20 }), every_weeks: scalar, timezone: fc.oneof(oddText, fc.constantFrom('UTC', 'America/Los_Angeles', 'Etc/GMT+99')), cron: fc.oneof(oddText, fc.constantFrom('0 9 30 2 *', '* * * * * * *', '0 9 * * wed')), every: fc.oneof(fc.constantFrom('daily', 'weekly', 'monthly', 'as_met'), oddText), limit: fc.record({ max: scalar, per: fc.oneof(fc.constantFrom('day', 'week'), oddText) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
          ),
          properties: fc.oneof(scalar, fc.array(oddText, { maxLength: 300 })),
        }, { requiredKeys: [] })
        .map((b) => ({ path: '/api/v1/messages', body: b })),
      fc
        .record({
          name: fc.oneof(oddText, hostileName),
          type: fc.oneof(fc.constantFrom('insights', 'funnels'), oddText),
          query: fc.oneof(
            scalar,
            fc.record({ event: fc.oneof(hostileName, scalar), measure: fc.record({ type: fc.oneof(fc.constantFrom('total', 'unique', 'sum', 'average'), oddText), property: hostileName }, { requiredKeys: ['type'] }), where: fc.array(filter, { maxLength: 20 }), profile_where: fc.array(filter, { maxLength: 20 }), breakdown: fc.record({ property: hostileName, on: fc.constantFrom('event', 'profile'), limit: scalar }, { requiredKeys: [] }), interval: fc.oneof(fc.constantFrom('hour', 'day', 'week'), oddText), timezone: fc.oneof(oddText, fc.constantFrom('UTC', 'Asia/Kolkata')) }, { requiredKeys: [] }),
            fc.record({ steps: fc.array(fc.record({ event: hostileName, where: fc.array(filter, { maxLength: 5 }) }), { maxLength: 25 }), window_days: scalar, window_hours: scalar, measure: fc.oneof(fc.constantFrom('conversion', 'completed'), oddText) }, { requiredKeys: [] }),
          ),
        }, { requiredKeys: [] })
        .map((b) => ({ path: '/api/v1/reports', body: b })),
      fc
        .record({ name: fc.oneof(oddText, hostileName), report_id: scalar, condition: fc.oneof(scalar, fc.record({ type: fc.oneof(fc.constantFrom('above', 'increase', 'anomaly'), oddText), value: scalar, by: scalar, unit: oddText, sensitivity: scalar, weeks: scalar }, { requiredKeys: [] })), segment: fc.oneof(oddText, fc.constant(null)), frequency: oddText, windows: fc.oneof(scalar, fc.record({ days_of_week: fc.array(oddText, { maxLength: 10 }), from: oddText, to: oddText, timezone: oddText }, { requiredKeys: [] })), channels: fc.array(fc.record({ type: fc.oneof(fc.constantFrom('webhook', 'email'), oddText), connection_id: scalar, to: fc.array(oddText, { maxLength: 5 }) }, { requiredKeys: ['type'] }), { maxLength: 12 }), creator_email: oddText }, { requiredKeys: [] })
        .map((b) => ({ path: '/api/v1/alerts', body: b })),
    );
    const query = fc.record({ path: fc.constantFrom('/api/v1/profiles', '/api/v1/events', '/api/v1/cohorts', '/api/v1/deliveries', '/api/v1/connections', '/api/v1/subscriptions', '/api/v1/messages', '/api/v1/messages/1/recipients', '/api/v1/messages/1/runs', '/api/v1/reports', '/api/v1/alerts', '/api/v1/alerts/1/history'), key: fc.oneof(fc.constantFrom('limit', 'cursor', 'distinct_id', 'event', 'from', 'state', 'event_id'), hostileName.map((n) => `property.${n}`)), value: fc.oneof(oddText, fc.integer().map(String), fc.constant('1e400')) });
    await fc.assert(
      fc.asyncProperty(fc.oneof(body, query), async (req) => {
        loop.reset();
        if ('body' in req) {
          const res = await svc.api(req.path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: json(req.body) });
          const text = await expectCalm(res, `POST ${req.path}`);
          if (res.status >= 400) {
            const { error } = JSON.parse(text) as { error: Record<string, unknown> };
            // A refusal may also say where in the body the mistake is (`path`, a JSON pointer).
            expect(error).toEqual({ code: expect.any(String), message: expect.any(String), ...('path' in error ? { path: expect.stringMatching(/^(\/.*)?$/) } : {}) });
          }
          if (req.path === '/api/v1/cohorts' && res.status === 201) {
            const { id } = JSON.parse(text) as { id: number };
            const count = await svc.api(`/api/v1/cohorts/${id}/count`);
            await expectCalm(count, 'counting an accepted cohort');
            expect(count.status, 'a cohort accepted with 201 is evaluable').toBe(200);
            await svc.api(`/api/v1/cohorts/${id}`, { method: 'DELETE' });
          }
          if (req.path === '/api/v1/reports' && res.status === 201) {
            const { id } = JSON.parse(text) as { id: number };
            const result = await svc.api(`/api/v1/reports/${id}/result`);
            await expectCalm(result, 'computing an accepted report');
            expect(result.status, 'a report accepted with 201 can be computed').toBe(200);
            await svc.api(`/api/v1/reports/${id}`, { method: 'DELETE' });
          }
        } else {
          const res = await svc.api(`${req.path}?${encodeURIComponent(req.key.toWellFormed())}=${encodeURIComponent(req.value.toWellFormed())}`);
          await expectCalm(res, `GET ${req.path}`);
        }
      }),
      { numRuns: 150 },
    );
    expect((process.memoryUsage().rss - rssAtStart) / 2 ** 20, 'RSS growth in MB').toBeLessThan(MAX_RSS_GROWTH_MB);
  });
});

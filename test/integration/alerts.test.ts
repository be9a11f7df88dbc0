import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAlert } from '../../packages/receiver/src/index.js';
import { dialectUnderTest } from '../helpers/database.js';
import { startSmtpSink } from '../helpers/smtp.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Alerts end to end on the database under test, the scheduler on an injected clock: traffic sent
 * with the official `mixpanel` client with a spike in it; every channel (a real webhook receiver,
 * a fake Slack, a real SMTP server) gets the firing; the webhook body validates against the JSON
 * Schema in packages/receiver and parses with its parseAlert.
 */
const Mixpanel = createRequire(import.meta.url)('mixpanel') as typeof import('mixpanel');
const schema = JSON.parse(fs.readFileSync(new URL('../../packages/receiver/schema/custom-alert.schema.json', import.meta.url), 'utf8'));
const validate = new Ajv({ allErrors: true }).compile(schema);
const H = 3_600_000;
const D = 24 * H;
const B = Date.UTC(2026, 5, 1); // Monday 1 June 2026, 00:00 UTC

let svc: TestService;
let receiver: Receiver;
let smtp: Awaited<ReturnType<typeof startSmtpSink>>;
const mails = () => smtp.mails;
let clock = B;

beforeAll(async () => {
  receiver = await startReceiver((r) => (r.path === '/slack' ? { status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' } : { status: 200, body: '{}' }));
  smtp = await startSmtpSink();
  svc = await startTestService(
    (c) => {
      c.logLevel = 'error';
      c.delivery.allowHttp = true;
      c.delivery.allowedNetworks = ['127.0.0.0/8'];
      c.delivery.pollIntervalMs = 50;
      c.scheduler.pollIntervalMs = 50;
      c.alerts.publicUrl = 'https://cohortcast.example.com/';
      c.mail.smtpUrl = smtp.url;
    },
    { now: () => clock },
  );
});

afterAll(async () => {
  await svc?.close();
  await receiver?.close();
  await smtp?.close();
});

const api = <T = any>(p: string, method = 'GET', body?: unknown) => svc.json<T>(p, method, body);
const client = () => Mixpanel.init(svc.project.token, { host: new URL(svc.url).host, protocol: 'http' });
const track = (event: string, props: Record<string, unknown>) => new Promise<void>((resolve, reject) => client().track(event, props as Record<string, string>, (err) => (err ? reject(err) : resolve())));
const at = (path: string) => receiver.received.filter((r) => r.path === path);

async function connection(path: string): Promise<number> {
  const res = await api('/api/v1/connections', 'POST', { name: path, url: receiver.origin + path, timeout_ms: 2000 });
  expect(res.status).toBe(201);
  return res.body.id;
}

async function created(path: string, body: unknown): Promise<number> {
  const res = await api(path, 'POST', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

/** Moves the clock and lets the scheduler run what became due (the alert checks among them). */
async function advanceTo(t: number): Promise<void> {
  clock = t;
  await svc.service.scheduler.tick();
}

const history = async (id: number) => (await api(`/api/v1/alerts/${id}/history?limit=1000`)).body.results as { bucket: { from: string }; segment: string; value: number | null; crossed: boolean; notified: boolean; note: string | null }[];

describe(`alerts on ${dialectUnderTest}`, () => {
  let above: number;

  it('fire once for a spike, on every channel; not again within their frequency; not outside their window; on a change by a percentage; for any segment', async () => {
    // Purchases each hour through the official client: 10 an hour on the web, then a spike of 50 (45 in the app) at 06:00, 60 at 07:00, 10 at 08:00.
    const perHour = [10, 10, 10, 10, 10, 10, 50, 60, 10];
    let n = 0;
    for (const [h, count] of perHour.entries()) {
      for (let i = 0; i < count; i++) {
        const store = h === 6 && i < 45 ? 'app' : 'web';
        await track('Purchase', { distinct_id: `u${n % 17}`, time: Math.floor((B + h * H + i * 1000) / 1000), $insert_id: `p${n++}`, store });
      }
    }
    const purchases = await created('/api/v1/reports', { name: 'Purchases per hour', type: 'insights', query: { event: 'Purchase', measure: { type: 'total' }, interval: 'hour' } });
    const byStore = await created('/api/v1/reports', { name: 'Purchases by store', type: 'insights', query: { event: 'Purchase', measure: { type: 'total' }, breakdown: { property: 'store', on: 'event' }, interval: 'hour' } });
    const hook = await connection('/above');
    const slack = await connection('/slack');
    above = await created('/api/v1/alerts', {
      name: 'Purchase spike',
      report_id: purchases,
      condition: { type: 'above', value: 30 },
      frequency: 'daily',
      channels: [{ type: 'webhook', connection_id: hook }, { type: 'slack', connection_id: slack }, { type: 'email', to: ['oncall@example.com'] }],
      creator: 'Ada',
      creator_email: 'ada@example.com',
    });
    // Firing is also an event for subscriptions.
    await created('/api/v1/subscriptions', { name: 'alerts', event_types: ['alert.fired'], channels: [{ type: 'webhook', connection_id: await connection('/events') }] });
    const windowed = await created('/api/v1/alerts', { name: 'Office hours only', report_id: purchases, condition: { type: 'above', value: 30 }, frequency: 'hourly', windows: { from: '12:00', to: '18:00', timezone: 'UTC' }, channels: [{ type: 'webhook', connection_id: await connection('/windowed') }] });
    const rise = await created('/api/v1/alerts', { name: 'Purchases up 100%', report_id: purchases, condition: { type: 'increase', by: 100, unit: 'percent' }, frequency: 'hourly', channels: [{ type: 'webhook', connection_id: await connection('/rise') }] });
    const fall = await created('/api/v1/alerts', { name: 'Purchases down 50%', report_id: purchases, condition: { type: 'decrease', by: 50, unit: 'percent' }, frequency: 'hourly', channels: [{ type: 'webhook', connection_id: await connection('/fall') }] });
    const anySegment = await created('/api/v1/alerts', { name: 'A store spikes', report_id: byStore, segment: '$any', condition: { type: 'above', value: 30 }, frequency: 'daily', channels: [{ type: 'webhook', connection_id: await connection('/any') }] });

    // Each hour's bucket is checked as the next hour begins: 00:00 … 08:00 (the fall to 0 at 09:00 is not looked at here).
    for (let h = 1; h <= 9; h++) await advanceTo(B + h * H);
    await waitFor('the spike on every channel', () => (at('/above').length === 1 && at('/slack').length === 1 && mails().length === 1 && at('/any').length === 1 && at('/rise').length === 1 && at('/fall').length === 1 ? true : undefined), 10_000);

    // Once, for the 06:00 bucket, as Mixpanel's receiver reads it.
    const body = JSON.parse(at('/above')[0]!.body);
    expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
    const alert = parseAlert(at('/above')[0]!.body);
    expect(alert.isTest).toBe(false);
    expect(alert).toMatchObject({
      event_type: 'custom_alert_triggered',
      alert: { id: above, name: 'Purchase spike', creator: 'Ada', creator_email: 'ada@example.com', project_id: svc.project.id, project_name: 'Test project', fired_at: new Date(B + 7 * H).toISOString() },
      condition: { type: 'absolute', operator: 'greater than', threshold: 30, current_value: '50', formatted_value: '50' },
      report: { name: 'Purchases per hour', type: 'insights', url: `https://cohortcast.example.com/reports/${purchases}` },
      links: { report_url: `https://cohortcast.example.com/reports/${purchases}`, edit_alert_url: `https://cohortcast.example.com/alerts/${above}` },
    });
    expect(alert.condition.sentence).toContain('above 30');
    expect(JSON.parse(at('/slack')[0]!.body).text).toContain('Purchase spike');
    expect(mails()[0]!.to).toEqual(['oncall@example.com']);
    expect(mails()[0]!.data).toContain('Purchase spike');

    // The 07:00 bucket (60) was not checked: the alert is quiet until the next day.
    const spikeChecks = await history(above);
    expect(spikeChecks.filter((c) => c.crossed).map((c) => c.bucket.from)).toEqual([new Date(B + 6 * H).toISOString()]);
    expect((await api(`/api/v1/alerts/${above}`)).body).toMatchObject({ last_fired_at: new Date(B + 7 * H).toISOString(), quiet_until: new Date(B + D).toISOString() });

    // Outside its window it records the crossings and sends nothing.
    const outside = (await history(windowed)).filter((c) => c.crossed);
    expect(outside.map((c) => c.bucket.from).sort()).toEqual([new Date(B + 6 * H).toISOString(), new Date(B + 7 * H).toISOString()]);
    expect(outside.every((c) => !c.notified && c.note === 'crossed outside the notification window: not sent')).toBe(true);
    expect(at('/windowed')).toEqual([]);

    // Up 400% from 10 to 50 at 06:00 (and not 20% from 50 to 60); down 83% from 60 to 10 at 08:00.
    expect(parseAlert(at('/rise')[0]!.body).condition).toMatchObject({ type: 'relative', operator: 'increases by more than', threshold: 100, current_value: '50' });
    expect((await history(rise)).filter((c) => c.crossed).map((c) => c.bucket.from)).toEqual([new Date(B + 6 * H).toISOString()]);
    expect(parseAlert(at('/fall')[0]!.body).condition).toMatchObject({ operator: 'decreases by more than', current_value: '10' });
    expect((await history(fall)).filter((c) => c.crossed).map((c) => c.bucket.from)).toEqual([new Date(B + 8 * H).toISOString()]);

    // One alert.fired event for each firing (4: the windowed alert sent nothing), with the payload as its data.
    const events = await waitFor('the alert.fired events', () => (at('/events').length === 4 ? at('/events').map((r) => JSON.parse(r.body)) : undefined), 10_000);
    expect(events.map((e) => e.event_type)).toEqual(Array(4).fill('alert.fired'));
    expect(events.find((e) => e.data.alert.id === above).data).toEqual(body);

    // Any segment: the app's 45 crossed, the web's 5 did not.
    const seg = parseAlert(at('/any')[0]!.body);
    expect(seg.condition).toMatchObject({ current_value: '45' });
    expect(seg.condition.sentence).toContain('for app');
  });

  it('a test sends to every channel at once, the name prefixed "[TEST] ", and is not recorded', async () => {
    const before = (await history(above)).length;
    const res = await api(`/api/v1/alerts/${above}/test`, 'POST');
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: { type: string; ok: boolean }) => [r.type, r.ok])).toEqual([['webhook', true], ['slack', true], ['email', true]]);
    const test = parseAlert(at('/above').at(-1)!.body);
    expect(test.isTest).toBe(true);
    expect(test.alert.name).toBe('[TEST] Purchase spike');
    expect(validate(JSON.parse(at('/above').at(-1)!.body))).toBe(true);
    expect(JSON.parse(at('/slack').at(-1)!.body).text).toContain('[TEST] Purchase spike');
    await waitFor('the test e-mail', () => (mails().some((m) => m.data.includes('[TEST] Purchase spike')) ? true : undefined));
    expect((await history(above)).length).toBe(before);
  });

  it('anomaly: a Saturday as busy as a weekday, against eight weeks of quiet weekends', async () => {
    // Visits a day from Monday 6 July 2026: 100 on weekdays, 20 at weekends, for 8 weeks; then a normal Friday and a busy Saturday.
    const start = Date.UTC(2026, 6, 6);
    const events = [];
    for (let d = 0; d < 58; d++) {
      const weekday = ((d % 7) + 1) % 7; // 0 = Sunday
      const weekend = weekday === 0 || weekday === 6;
      const count = d === 54 ? 100 : (weekend ? 20 : 100) + (d % 3) - 1;
      for (let i = 0; i < count; i++) events.push({ event: 'Visit', properties: { distinct_id: `v${i}`, time: start + d * D + i * 60_000, $insert_id: `v${d}-${i}` } });
    }
    const basic = `Basic ${Buffer.from(`${svc.project.secret}:`).toString('base64')}`;
    for (let i = 0; i < events.length; i += 2000) {
      const res = await fetch(`${svc.url}/import?strict=1`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basic }, body: JSON.stringify(events.slice(i, i + 2000)) });
      expect(res.status).toBe(200);
    }
    const visits = await created('/api/v1/reports', { name: 'Visits per day', type: 'insights', query: { event: 'Visit', measure: { type: 'total' }, interval: 'day' } });
    const anomaly = await created('/api/v1/alerts', { name: 'Unusual visits', report_id: visits, condition: { type: 'anomaly' }, frequency: 'daily', channels: [{ type: 'webhook', connection_id: await connection('/anomaly') }] });
    // Day 53 is a Friday (normal), day 54 the busy Saturday.
    await advanceTo(start + 54 * D);
    await advanceTo(start + 55 * D);
    await waitFor('the anomaly', () => (at('/anomaly').length === 1 ? true : undefined), 10_000);
    const checks = await history(anomaly);
    const friday = checks.find((c) => c.bucket.from === new Date(start + 53 * D).toISOString())!;
    const saturday = checks.find((c) => c.bucket.from === new Date(start + 54 * D).toISOString())!;
    expect(friday).toMatchObject({ crossed: false, notified: false });
    expect(saturday).toMatchObject({ value: 100, crossed: true, notified: true });
    expect(parseAlert(at('/anomaly')[0]!.body).condition).toMatchObject({ type: 'anomaly', operator: 'outside the expected range', threshold: null, current_value: '100' });
  });

  it('an alert whose report cannot be computed any more turns invalid and e-mails its creator once', async () => {
    const cohort = await created('/api/v1/cohorts', { name: 'Buyers', definition: { property: 'plan', op: 'set' } });
    const report = await created('/api/v1/reports', { name: 'Buyer purchases', type: 'insights', query: { event: 'Purchase', measure: { type: 'total' }, cohort_id: cohort, interval: 'hour' } });
    const alert = await created('/api/v1/alerts', { name: 'Buyers stop', report_id: report, condition: { type: 'below', value: 1 }, frequency: 'hourly', creator_email: 'owner@example.com', channels: [{ type: 'webhook', connection_id: await connection('/invalid') }] });
    expect((await api(`/api/v1/reports/${report}`, 'DELETE')).status).toBe(409);
    expect((await api(`/api/v1/cohorts/${cohort}`, 'DELETE')).status).toBe(204);
    await advanceTo(clock + H);
    await advanceTo(clock + H);
    await waitFor('the e-mail to its creator', () => (mails().some((m) => m.to.includes('owner@example.com')) ? true : undefined), 10_000);
    expect(mails().filter((m) => m.to.includes('owner@example.com'))).toHaveLength(1);
    expect(mails().find((m) => m.to.includes('owner@example.com'))!.data).toContain('Buyers stop');
    expect((await api(`/api/v1/alerts/${alert}`)).body).toMatchObject({ state: 'invalid', state_reason: expect.stringContaining(`cohort ${cohort} no longer exists`) });
    expect(at('/invalid')).toEqual([]);
  });

  it('refuses bad alerts with the field, and a connection an alert uses cannot be deleted', async () => {
    const report = await created('/api/v1/reports', { name: 'R', type: 'insights', query: {} });
    const broken = await created('/api/v1/reports', { name: 'R by store', type: 'insights', query: { breakdown: { property: 'store' } } });
    const conn = await connection('/bad');
    const base = { name: 'a', report_id: report, condition: { type: 'above', value: 1 }, channels: [{ type: 'webhook', connection_id: conn }] };
    const cases: [unknown, string][] = [
      [{ ...base, report_id: 99_999 }, 'report_id: no report 99999'],
      [{ ...base, condition: { type: 'sideways' } }, 'condition.type'],
      [{ ...base, condition: { type: 'increase', by: 5, unit: 'furlongs' } }, 'condition.unit'],
      [{ ...base, condition: { type: 'anomaly', weeks: 2 } }, 'condition.weeks'],
      [{ ...base, windows: { from: '18:00', to: '09:00' } }, 'windows.to: must be after windows.from'],
      [{ ...base, windows: { timezone: 'Nowhere/City' } }, 'windows.timezone'],
      [{ ...base, segment: 'web' }, 'segment: report'],
      [{ ...base, report_id: broken }, 'segment: report'],
      [{ ...base, channels: [{ type: 'sms', connection_id: conn, from: '+14155550100', to: ['+14155550101'] }] }, 'alerts notify by webhook, slack or email'],
      [{ ...base, channels: [{ type: 'webhook', connection_id: 99_999 }] }, 'channels[0].connection_id: no connection 99999'],
      [{ ...base, creator_email: 'nobody' }, 'creator_email'],
    ];
    for (const [body, message] of cases) {
      const res = await api('/api/v1/alerts', 'POST', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.message).toContain(message);
    }
    const ok = await created('/api/v1/alerts', base);
    const del = await api(`/api/v1/connections/${conn}`, 'DELETE');
    expect(del.status).toBe(409);
    expect(del.body.error.message).toContain(`alert ${ok}`);
    expect((await api(`/api/v1/alerts/${ok}`, 'DELETE')).status).toBe(204);
  });
});

import { createRequire } from 'node:module';
import { Webhook } from 'standardwebhooks';
import { parseMessage, verifySignature } from '../../packages/receiver/src/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSchedule } from '../../src/store/schedules-repo.js';
import { dialectUnderTest } from '../helpers/database.js';
import { startReceiver, type Received, type Receiver, type Reply } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Webhook messages end to end on the database under test, with a real receiver that reads each
 * request as a receiver written for Mixpanel's webhook campaigns does: a form body whose `users`
 * parameter is a JSON list. Profiles go in through the official mixpanel client. The scheduler
 * runs on an injected clock, so calendar schedules (across a daylight-saving change too) run
 * when the test moves it, not when a wall clock gets there.
 */
const Mixpanel = createRequire(import.meta.url)('mixpanel') as typeof import('mixpanel');

let svc: TestService;
let receiver: Receiver;
let clock = Date.UTC(2026, 2, 2, 8, 0); // Monday 2 March 2026, 08:00 UTC
/** How each path answers (default 200). */
const answers = new Map<string, (r: Received) => Reply | undefined>();
let signingSecret = '';

beforeAll(async () => {
  receiver = await startReceiver((r) => answers.get(r.path)?.(r) ?? { status: 200, body: 'ok' });
  svc = await startTestService(
    (c) => {
      c.logLevel = process.env.LOGLEVEL ?? "error";
      c.delivery.allowHttp = true;
      c.delivery.allowedNetworks = ['127.0.0.0/8'];
      c.delivery.pollIntervalMs = 50;
      c.scheduler.pollIntervalMs = 50;
      c.membership.sweepIntervalMs = 60_000;
      c.messages.batchIntervalMs = 50;
      c.messages.retryBaseMs = 100;
      c.messages.retryMaxMs = 400;
    },
    { now: () => clock },
  );
});

afterAll(async () => {
  await svc?.close();
  await receiver?.close();
});

const api = <T = any>(p: string, method = 'GET', body?: unknown) => svc.json<T>(p, method, body);
const client = () => Mixpanel.init(svc.project.token, { host: new URL(svc.url).host, protocol: 'http' });
const setProfile = (id: string, props: Record<string, unknown>) =>
  new Promise<void>((resolve, reject) => client().people.set(id, props as Record<string, string>, (err) => (err ? reject(err) : resolve())));

async function engage(updates: { id: string; set: Record<string, unknown> }[]): Promise<void> {
  for (let i = 0; i < updates.length; i += 50) {
    const data = Buffer.from(JSON.stringify(updates.slice(i, i + 50).map((u) => ({ $token: svc.project.token, $distinct_id: u.id, $set: u.set })))).toString('base64');
    const res = await fetch(`${svc.url}/engage`, { method: 'POST', body: `data=${data}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await res.text()).toBe('1');
  }
}

interface MixpanelUser {
  $distinct_id: string;
  $properties: Record<string, unknown>;
}

/** What a Mixpanel webhook receiver does with a request: check the form, read `users`. */
function readUsers(r: Received): MixpanelUser[] {
  expect(r.method).toBe('POST');
  expect(r.headers['content-type']).toBe('application/x-www-form-urlencoded');
  const form = new URLSearchParams(r.body);
  expect([...form.keys()]).toEqual(['users']);
  const users = JSON.parse(form.get('users')!) as MixpanelUser[];
  expect(Array.isArray(users)).toBe(true);
  expect(users.length).toBeLessThanOrEqual(50);
  // The receiver SDK reads it the same way.
  expect(parseMessage(r.body)).toEqual(users);
  return users;
}

const at = (path: string) => receiver.received.filter((r) => r.path === path);
const usersAt = (path: string) => at(path).flatMap(readUsers);
const idsAt = (path: string) => usersAt(path).map((u) => u.$distinct_id);

async function connection(path: string): Promise<number> {
  const res = await api('/api/v1/connections', 'POST', { name: path, url: receiver.origin + path, timeout_ms: 2000, basic_auth: { username: 'mp', password: 'hook' }, headers: { 'x-team': 'growth' } });
  expect(res.status).toBe(201);
  signingSecret = res.body.signing_secret;
  return res.body.id;
}

async function cohort(name: string, definition: unknown): Promise<number> {
  const res = await api('/api/v1/cohorts', 'POST', { name, definition });
  expect(res.status).toBe(201);
  return res.body.id;
}

/** Moves the injected clock and lets the scheduler run what became due. */
async function advanceTo(t: number): Promise<void> {
  clock = t;
  await svc.service.scheduler.tick();
}

const ledger = async (id: number, query = '') => (await api(`/api/v1/messages/${id}/recipients?limit=1000${query}`)).body.results as { distinct_id: string; state: string; sends: number; delivery_id: number | null; reason: string | null }[];
const runs = async (id: number) => (await api(`/api/v1/messages/${id}/runs`)).body.results as { kind: string; users: number; sent: number; failed: number; outstanding: number; finished_at: string | null }[];

describe(`webhook messages on ${dialectUnderTest}`, () => {
  it('refuses bad input with a 400 naming the field', async () => {
    const conn = await connection('/bad');
    const c = await cohort('Anyone', { property: 'plan', op: 'set' });
    const base = { name: 'm', cohort_id: c, connection_id: conn, schedule: { type: 'asap' } };
    const cases: [unknown, string][] = [
      [{ ...base, cohort_id: 99_999 }, 'cohort_id: no cohort 99999'],
      [{ ...base, connection_id: 99_999 }, 'connection_id: no connection 99999'],
      [{ ...base, schedule: { type: 'scheduled', at: '09:00', timezone: 'Mars/Olympus' } }, 'schedule.timezone: "Mars/Olympus" is not an IANA time zone'],
      [{ ...base, schedule: { type: 'scheduled', cron: '0 9 30 2 *', timezone: 'UTC' } }, 'schedule.cron: "0 9 30 2 *" never occurs'],
      [{ ...base, schedule: { type: 'scheduled', at: '25:00' } }, 'schedule.at: expected a time of day'],
      [{ ...base, schedule: { type: 'scheduled', at: '09:00', days_of_week: ['someday'] } }, 'schedule.days_of_week[0]: expected one of'],
      [{ ...base, schedule: { type: 'recurring', every: 'daily', limit: { max: 2 } } }, 'schedule.limit.per: required'],
      [{ ...base, schedule: { type: 'recurring', every: 'hourly' } }, 'schedule.every: expected one of daily, weekly, monthly, as_met'],
      [{ ...base, schedule: { type: 'asap', limit: { max: 1, per: 'day' } } }, 'schedule.limit: not a field of this schedule'],
      [{ ...base, definition: { property: 'plan', op: 'set' } }, 'cohort_id: give the cohort to target, or an inline "definition", one of the two'],
      [{ ...base, cohort_id: undefined, definition: { property: 'plan', op: 'sometimes' } }, 'definition'],
      [{ ...base, properties: [] }, 'properties: expected a list of 1 to 255'],
    ];
    for (const [body, message] of cases) {
      const res = await api('/api/v1/messages', 'POST', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.message).toContain(message);
    }
    // In use: neither the cohort nor the connection can be deleted under a message.
    const m = await api('/api/v1/messages', 'POST', base);
    expect(m.status).toBe(201);
    const delCohort = await api(`/api/v1/cohorts/${c}`, 'DELETE');
    expect(delCohort.status).toBe(409);
    expect(delCohort.body.error.message).toContain(`webhook message ${m.body.id}`);
    const delConnection = await api(`/api/v1/connections/${conn}`, 'DELETE');
    expect(delConnection.status).toBe(409);
    expect(delConnection.body.error.message).toContain(`webhook message ${m.body.id}`);
    expect((await api(`/api/v1/messages/${m.body.id}`, 'DELETE')).status).toBe(204);
    expect((await api(`/api/v1/cohorts/${c}`, 'DELETE')).status).toBe(204);
  });

  it('ASAP: the users matching at the start in batches of 50, then each user as they come to match, once', async () => {
    const path = '/asap';
    const conn = await connection(path);
    const c = await cohort('Pro', { property: 'plan', op: 'equals', value: 'asap-pro' });
    await engage(Array.from({ length: 120 }, (_, i) => ({ id: `a${String(i).padStart(3, '0')}`, set: { plan: 'asap-pro', $email: `a${i}@example.com`, n: i } })));
    const created = await api('/api/v1/messages', 'POST', { name: 'Welcome pros', cohort_id: c, connection_id: conn, schedule: { type: 'asap' } });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    await waitFor('the 120 users matching at the start', () => (idsAt(path).length >= 120 ? true : undefined), 20_000);
    expect(at(path).map((r) => readUsers(r).length).sort((a, b) => a - b)).toEqual([20, 50, 50]);
    expect(new Set(idsAt(path)).size).toBe(120);
    // The whole profile as $properties, as in the seeds' example.
    const a7 = usersAt(path).find((u) => u.$distinct_id === 'a007')!;
    expect(a7.$properties).toMatchObject({ plan: 'asap-pro', $email: 'a7@example.com', n: 7 });
    // Signed, with the connection's Basic auth and headers.
    const first = at(path)[0]!;
    expect(first.headers.authorization).toBe(`Basic ${Buffer.from('mp:hook').toString('base64')}`);
    expect(first.headers['x-team']).toBe('growth');
    // Signed over the form body as sent (standardwebhooks' verify() also parses the body as JSON, which a form is not: its sign() is compared instead).
    const h = first.headers as Record<string, string>;
    expect(h['webhook-signature']).toBe(new Webhook(signingSecret).sign(h['webhook-id']!, new Date(Number(h['webhook-timestamp']) * 1000), first.body));
    expect(verifySignature({ secrets: signingSecret, headers: first.headers, body: first.body }).webhookId).toBe(h['webhook-id']);

    // A property change through the official client makes a new user match: posted at once.
    await setProfile('late-joiner', { plan: 'asap-pro', $first_name: 'Late' });
    await waitFor('the late joiner', () => (idsAt(path).includes('late-joiner') ? true : undefined), 10_000);
    // Leaving and coming back does not send them again: ASAP is once per message.
    await setProfile('late-joiner', { plan: 'free' });
    await setProfile('late-joiner', { plan: 'asap-pro' });
    await setProfile('second', { plan: 'asap-pro' });
    await waitFor('the second joiner', () => (idsAt(path).includes('second') ? true : undefined), 10_000);
    expect(idsAt(path).filter((u) => u === 'late-joiner')).toHaveLength(1);
    // The receiver has the request before its 200 is recorded: wait for the ledger to say so.
    const rows = await waitFor('the ledger to record every send', async () => {
      const r = await ledger(id);
      return r.length === 122 && r.every((x) => x.state === 'sent') ? r : undefined;
    });
    expect(rows.every((r) => r.state === 'sent' && r.sends === 1 && r.delivery_id !== null)).toBe(true);
    const [live] = await runs(id);
    expect(live).toMatchObject({ kind: 'live', users: 122, sent: 122, failed: 0, outstanding: 0 });
  });

  it('ASAP: a batch answered with another 2xx (201) is not sent; its users go again on the backoff', async () => {
    const path = '/asap-201';
    let refused = 0;
    answers.set(path, () => (refused++ < 2 ? { status: 201, body: 'created' } : undefined));
    const conn = await connection(path);
    const c = await cohort('Beta', { property: 'beta', op: 'equals', value: true });
    const m = (await api('/api/v1/messages', 'POST', { name: 'Beta', cohort_id: c, connection_id: conn, schedule: { type: 'asap' }, properties: ['$email'] })).body.id as number;
    await waitFor('the live watch', async () => ((await svc.service.store.db.selectFrom('cohort_watches').select('state').where('cohort_id', '=', c).executeTakeFirst())?.state === 'live' ? true : undefined));
    await engage([{ id: 'b1', set: { beta: true, $email: 'b1@example.com', secret: 'not sent' } }]);
    await waitFor('three requests (two 201s, then a 200)', () => (at(path).length >= 3 ? true : undefined), 10_000);
    // Only the named property goes as $properties.
    expect(usersAt(path)).toEqual([0, 1, 2].map(() => ({ $distinct_id: 'b1', $properties: { $email: 'b1@example.com' } })));
    await waitFor('b1 sent', async () => ((await ledger(m)).find((r) => r.distinct_id === 'b1')?.state === 'sent' ? true : undefined));
    const [row] = await ledger(m);
    expect(row).toMatchObject({ state: 'sent', sends: 1 });
    const [live] = await runs(m);
    expect(live).toMatchObject({ users: 1, sent: 1, failed: 2, outstanding: 0 });
  });

  it('scheduled: at 09:00 in Los Angeles on Wednesdays, across the daylight-saving change; the second run sends only newcomers', async () => {
    const path = '/weekly';
    const conn = await connection(path);
    const c = await cohort('Churn risk', { property: 'risk', op: 'equals', value: 'high' });
    await engage(['w1', 'w2', 'w3'].map((id) => ({ id, set: { risk: 'high' } })));
    clock = Date.UTC(2026, 2, 3, 16, 0); // Tuesday 3 March, 08:00 PST
    const m = (await api('/api/v1/messages', 'POST', { name: 'Weekly', cohort_id: c, connection_id: conn, schedule: { type: 'scheduled', at: '09:00', days_of_week: ['wed'], timezone: 'America/Los_Angeles' } })).body.id as number;
    const schedule = () => findSchedule(svc.service.store.db, 'message', String(m));
    // 09:00 PST is 17:00 UTC.
    expect((await schedule())!.next_run_at).toBe(Date.UTC(2026, 2, 4, 17, 0));
    await advanceTo(Date.UTC(2026, 2, 4, 16, 59));
    expect(at(path)).toHaveLength(0);
    await advanceTo(Date.UTC(2026, 2, 4, 17, 0, 1));
    await waitFor('the first run', () => (idsAt(path).length === 3 ? true : undefined), 10_000);
    // Daylight-saving time starts on 8 March: the next 09:00 in Los Angeles is 16:00 UTC.
    expect((await schedule())!.next_run_at).toBe(Date.UTC(2026, 2, 11, 16, 0));
    await engage([{ id: 'w4', set: { risk: 'high' } }]);
    await advanceTo(Date.UTC(2026, 2, 11, 16, 0, 1));
    await waitFor('the second run', () => (idsAt(path).length === 4 ? true : undefined), 10_000);
    expect(idsAt(path).sort()).toEqual(['w1', 'w2', 'w3', 'w4']);
    const [second, first] = await waitFor('both runs finished', async () => {
      const r = await runs(m);
      return r.length === 2 && r.every((x) => x.finished_at !== null) ? r : undefined;
    });
    expect(first).toMatchObject({ kind: 'scheduled', users: 3, sent: 3, outstanding: 0 });
    expect(second).toMatchObject({ kind: 'scheduled', users: 1, sent: 1, outstanding: 0 });
    expect(second!.finished_at).not.toBeNull();
  });

  it('scheduled: a batch answered 500 leaves its 50 users unsent, and only they go at the next run', async () => {
    const path = '/flaky';
    let failed: string[] | undefined;
    answers.set(path, (r) => {
      if (failed) return undefined;
      failed = readUsers(r).map((u) => u.$distinct_id);
      return { status: 500, body: 'busy' };
    });
    const conn = await connection(path);
    const c = await cohort('Flaky', { property: 'cohort', op: 'equals', value: 'flaky' });
    await engage(Array.from({ length: 120 }, (_, i) => ({ id: `f${String(i).padStart(3, '0')}`, set: { cohort: 'flaky' } })));
    clock = Date.UTC(2026, 3, 1, 8, 0);
    const m = (await api('/api/v1/messages', 'POST', { name: 'Daily digest', cohort_id: c, connection_id: conn, schedule: { type: 'scheduled', at: '09:00', timezone: 'UTC' } })).body.id as number;
    await advanceTo(Date.UTC(2026, 3, 1, 9, 0, 1));
    await waitFor('the first run to end', async () => ((await runs(m))[0]?.finished_at ? true : undefined), 10_000);
    expect(failed).toHaveLength(50);
    const unsent = await ledger(m, '&state=failed');
    expect(unsent.map((r) => r.distinct_id).sort()).toEqual([...failed!].sort());
    expect(unsent[0]!.reason).toContain('500');
    expect((await runs(m))[0]).toMatchObject({ users: 120, sent: 70, failed: 50 });
    const before = at(path).length;
    await advanceTo(Date.UTC(2026, 3, 2, 9, 0, 1));
    await waitFor('the second run to end', async () => ((await runs(m)).length === 2 && (await runs(m))[0]!.finished_at ? true : undefined), 10_000);
    const again = at(path).slice(before).flatMap(readUsers).map((u) => u.$distinct_id);
    expect(again.sort()).toEqual([...failed!].sort());
    expect((await ledger(m)).every((r) => r.state === 'sent' && r.sends === 1)).toBe(true);
  });

  it('recurring daily with a limit of 2 a week: sent again each day, until the limit, then again the next week', async () => {
    const path = '/daily';
    const conn = await connection(path);
    const c = await cohort('Trial', { property: 'trial', op: 'equals', value: 'daily' });
    await engage([{ id: 'd1', set: { trial: 'daily' } }]);
    clock = Date.UTC(2026, 4, 4, 8, 0); // Monday 4 May
    const m = (await api('/api/v1/messages', 'POST', { name: 'Nudge', cohort_id: c, connection_id: conn, schedule: { type: 'recurring', every: 'daily', at: '09:00', timezone: 'UTC', limit: { max: 2, per: 'week' } } })).body.id as number;
    for (const [day, expected] of [[4, 1], [5, 2], [6, 2], [7, 2], [8, 2], [9, 2], [10, 2], [11, 3]] as const) {
      await advanceTo(Date.UTC(2026, 4, day, 9, 0, 1));
      await waitFor(`the run of ${day} May`, async () => ((await runs(m))[0]?.finished_at ? true : undefined), 10_000);
      await waitFor(`${expected} sends by ${day} May`, () => (idsAt(path).length === expected ? true : undefined), 5000);
    }
    expect((await ledger(m))[0]).toMatchObject({ distinct_id: 'd1', state: 'sent', sends: 3 });
    expect((await runs(m)).map((r) => r.users)).toEqual([1, 0, 0, 0, 0, 0, 1, 1]);
  });

  it('recurring as_met: each time a user newly matches', async () => {
    const path = '/as-met';
    const conn = await connection(path);
    const m = await api('/api/v1/messages', 'POST', { name: 'Cart', definition: { property: 'cart', op: 'equals', value: 'full' }, connection_id: conn, schedule: { type: 'recurring', every: 'as_met' } });
    expect(m.status).toBe(201);
    expect(m.body.definition).toEqual({ property: 'cart', op: 'equals', value: 'full' });
    await waitFor('the live watch', async () => ((await svc.service.store.db.selectFrom('cohort_watches').select('state').where('cohort_id', '=', m.body.cohort_id).executeTakeFirst())?.state === 'live' ? true : undefined));
    await setProfile('shopper', { cart: 'full' });
    await waitFor('the first time', () => (idsAt(path).length === 1 ? true : undefined), 10_000);
    await setProfile('shopper', { cart: 'empty' });
    await waitFor('shopper leaving', async () => ((await svc.service.store.db.selectFrom('cohort_members').select('distinct_id').where('cohort_id', '=', m.body.cohort_id).execute()).length === 0 ? true : undefined));
    await setProfile('shopper', { cart: 'full' });
    await waitFor('the second time', () => (idsAt(path).length === 2 ? true : undefined), 10_000);
    // Its own cohort goes with it.
    expect((await api(`/api/v1/messages/${m.body.id}`, 'DELETE')).status).toBe(204);
    expect((await api(`/api/v1/cohorts/${m.body.cohort_id}`)).status).toBe(404);
  });

  it('test: five profiles picked at random, marked as a test, never recorded as sent', async () => {
    const path = '/test-send';
    const conn = await connection(path);
    const c = await cohort('Nobody', { property: 'never', op: 'equals', value: 'set' });
    const m = (await api('/api/v1/messages', 'POST', { name: 'Test me', cohort_id: c, connection_id: conn, schedule: { type: 'scheduled', at: '09:00' } })).body.id as number;
    const res = await api(`/api/v1/messages/${m}/test`, 'POST');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, status: 200 });
    expect(res.body.users).toHaveLength(5);
    const [r] = at(path);
    expect(r!.headers['x-cohortcast-test']).toBe('true');
    expect(readUsers(r!).map((u) => u.$distinct_id).sort()).toEqual([...res.body.users].sort());
    expect(await ledger(m)).toEqual([]);
    expect(await runs(m)).toEqual([]);
  });

  it('lists, reads, changes and disables messages', async () => {
    const conn = await connection('/crud');
    const c = await cohort('Crud', { property: 'crud', op: 'set' });
    const m = (await api('/api/v1/messages', 'POST', { name: 'Crud', cohort_id: c, connection_id: conn, schedule: { type: 'recurring', every: 'weekly', day_of_week: 'fri' }, enabled: false })).body;
    expect(m).toMatchObject({ enabled: false, schedule: { type: 'recurring', every: 'weekly', at: '09:00', day_of_week: 'fri', timezone: 'UTC' }, properties: null });
    const changed = await api(`/api/v1/messages/${m.id}`, 'PATCH', { schedule: { type: 'recurring', every: 'monthly', day_of_month: 15, at: '07:30', timezone: 'Europe/Paris' }, enabled: true });
    expect(changed.status).toBe(200);
    expect(changed.body.schedule).toEqual({ type: 'recurring', every: 'monthly', at: '07:30', day_of_month: 15, timezone: 'Europe/Paris' });
    expect((await findSchedule(svc.service.store.db, 'message', String(m.id)))!.cron).toBe('30 7 15 * *');
    const list = await api('/api/v1/messages?limit=100');
    expect(list.body.results.map((r: { id: number }) => r.id)).toContain(m.id);
    expect((await api(`/api/v1/messages/${m.id}`, 'PATCH', { schedule: { type: 'recurring', every: 'monthly', day_of_month: 32 } })).body.error.message).toContain('schedule.day_of_month');
    expect((await api('/api/v1/messages/999999')).status).toBe(404);
  });
});

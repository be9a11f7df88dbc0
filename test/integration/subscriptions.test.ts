import { createRequire } from 'node:module';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FanOut } from '../../src/subscriptions/fanout.js';
import { SubscriptionIndex } from '../../src/subscriptions/index.js';
import { dialectUnderTest } from '../helpers/database.js';
import { startSmtpSink } from '../helpers/smtp.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Event subscriptions end to end, on the database under test, with real local servers: a webhook
 * receiver (custom header, shared secret, Standard Webhooks signature, a retry de-duplicated by
 * event_id), a fake Slack, a real SMTP server and a fake of Twilio's Messages API. Profiles go in
 * through the official mixpanel client; live membership turns their changes into member events.
 */
const Mixpanel = createRequire(import.meta.url)('mixpanel') as typeof import('mixpanel');

let svc: TestService;
let hooks: Receiver;
let slack: Receiver;
let twilio: Receiver;
let smtp: Awaited<ReturnType<typeof startSmtpSink>>;
const mails = () => smtp.mails;
/** The receiver answers the next member_exited event with a 500 once, to see it retried. */
let failNextExit = false;

beforeAll(async () => {
  hooks = await startReceiver((r) => {
    if (failNextExit && r.body.includes('"event_type":"cohort.member_exited"')) {
      failNextExit = false;
      return { status: 500, body: '{"error":"busy"}' };
    }
    return { status: 200, body: '{}' };
  });
  slack = await startReceiver(() => ({ status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' }));
  twilio = await startReceiver(() => ({ status: 201, body: '{"sid":"SM1","status":"queued"}' }));
  smtp = await startSmtpSink();
  svc = await startTestService((c) => {
    c.logLevel = 'error';
    c.delivery.allowHttp = true;
    c.delivery.allowedNetworks = ['127.0.0.0/8'];
    c.delivery.standardSchedule = [0, 50, 100];
    c.delivery.jitter = 0;
    c.delivery.pollIntervalMs = 50;
    c.scheduler.pollIntervalMs = 50;
    c.membership.sweepIntervalMs = 100;
    // Slices of two profiles: every sweep here reads several.
    c.membership.sweepSlice = 2;
    c.mail.smtpUrl = smtp.url;
  });
});

afterAll(async () => {
  await svc?.close();
  await Promise.all([hooks, slack, twilio].map((r) => r?.close()));
  await smtp?.close();
});

const api = <T = any>(p: string, method = 'GET', body?: unknown) => svc.json<T>(p, method, body);
const client = () => Mixpanel.init(svc.project.token, { host: new URL(svc.url).host, protocol: 'http' });
const setProfile = (id: string, props: Record<string, unknown>) =>
  new Promise<void>((resolve, reject) => client().people.set(id, props as Record<string, string>, (err) => (err ? reject(err) : resolve())));
const deleteProfile = (id: string) => new Promise<void>((resolve, reject) => client().people.delete_user(id, (err) => (err ? reject(err) : resolve())));

type Envelope = { event_id: string; event_type: string; created_at: string; project_id: number; data: Record<string, any>; test?: boolean };
const envelopes = (r: Receiver) => r.received.map((x) => JSON.parse(x.body) as Envelope);
const arrived = (r: Receiver, what: string, pick: (e: Envelope) => boolean) => waitFor(what, () => envelopes(r).find(pick), 10_000);

async function connection(url: string, extra: Record<string, unknown> = {}) {
  const res = await api('/api/v1/connections', 'POST', { name: url, url, ...extra });
  expect(res.status).toBe(201);
  return res.body as { id: number; signing_secret: string };
}

describe(`event subscriptions on ${dialectUnderTest}`, () => {
  it('tells a webhook when a user enters and leaves a watched cohort, signed, with its headers, the same event_id on a retry', async () => {
    const cohort = (await api('/api/v1/cohorts', 'POST', { name: 'Pros', definition: { property: 'plan', op: 'equals', value: 'pro' } })).body;
    const hook = await connection(hooks.url, { headers: { 'x-team': 'growth' }, secret_header: { name: 'x-shared-secret', value: 's3cret' } });
    const sub = await api('/api/v1/subscriptions', 'POST', { name: 'pros', event_types: ['cohort.member_entered', 'cohort.member_exited'], cohort_ids: [cohort.id], channels: [{ type: 'webhook', connection_id: hook.id }] });
    expect(sub.status).toBe(201);
    // Watched from now: the baseline is recorded before the first change is looked at.
    await waitFor('the watch to go live', async () => ((await svc.service.store.db.selectFrom('cohort_watches').select('state').where('cohort_id', '=', cohort.id).executeTakeFirst())?.state === 'live' ? true : undefined));

    await setProfile('ada', { plan: 'pro', $email: 'ada@example.com', $first_name: 'Ada' });
    const entered = await arrived(hooks, 'ada entering', (e) => e.event_type === 'cohort.member_entered' && e.data.distinct_id === 'ada');
    expect(entered).toMatchObject({
      project_id: svc.project.id,
      data: { distinct_id: 'ada', cohort: { id: cohort.id, name: 'Pros' }, member: { mixpanel_distinct_id: 'ada', email: 'ada@example.com', first_name: 'Ada' }, user: { $distinct_id: 'ada', $properties: { plan: 'pro' } } },
    });
    expect(entered.event_id).toMatch(/^evt_/);
    const hit = hooks.received.find((x) => x.body.includes(entered.event_id))!;
    // Arrived is not yet recorded: wait for the delivery to end.
    const byEvent = await waitFor('the delivery to be recorded', async () => {
      const got = (await api(`/api/v1/deliveries?event_id=${entered.event_id}`)).body.results as { state: string }[];
      return got.length > 0 && got.every((d) => d.state !== 'pending') ? got : undefined;
    });
    expect(byEvent).toEqual([expect.objectContaining({ event_id: entered.event_id, channel: 'webhook', connection_id: hook.id, state: 'succeeded' })]);
    expect(hit.headers['x-team']).toBe('growth');
    expect(hit.headers['x-shared-secret']).toBe('s3cret');
    expect(() => new Webhook(hook.signing_secret).verify(hit.body, hit.headers as Record<string, string>)).not.toThrow();

    // The receiver fails the first attempt of ada's exit: the retry carries the same event_id (and webhook-id).
    failNextExit = true;
    await setProfile('ada', { plan: 'free' });
    const exits = await waitFor('ada leaving, retried', () => {
      const got = hooks.received.filter((x) => x.body.includes('"event_type":"cohort.member_exited"'));
      return got.length >= 2 ? got : undefined;
    });
    expect(exits).toHaveLength(2);
    expect(new Set(exits.map((x) => (JSON.parse(x.body) as Envelope).event_id)).size).toBe(1);
    expect(new Set(exits.map((x) => x.headers['webhook-id'])).size).toBe(1);
    expect((JSON.parse(exits[0]!.body) as Envelope).data).toMatchObject({ distinct_id: 'ada', cohort: { id: cohort.id } });
  });

  it('catches a change time alone makes, with the sweep', async () => {
    const cohort = (await api('/api/v1/cohorts', 'POST', { name: 'Due', definition: { property: 'due_at', op: 'before', value: { days_ago: 0 } } })).body;
    const hook = await connection(hooks.url);
    await api('/api/v1/subscriptions', 'POST', { name: 'due', event_types: ['cohort.member_entered'], cohort_ids: [cohort.id], channels: [{ type: 'webhook', connection_id: hook.id }] });
    await waitFor('the watch to go live', async () => ((await svc.service.store.db.selectFrom('cohort_watches').select('state').where('cohort_id', '=', cohort.id).executeTakeFirst())?.state === 'live' ? true : undefined));
    // Due two seconds from now: no change to the profile will say when it comes due.
    const due = new Date(Date.now() + 2000).toISOString().slice(0, 19);
    const users = ['grace', 'hedy', 'ida', 'joan', 'kay'];
    for (const id of users) await setProfile(id, { due_at: due });
    const entered = await waitFor('all five coming due', () => {
      const got = envelopes(hooks).filter((x) => x.event_type === 'cohort.member_entered' && x.data.cohort.id === cohort.id);
      return got.length >= users.length ? got : undefined;
    });
    expect(entered.map((e) => e.data.distinct_id).sort()).toEqual(users);
  });

  it('posts to Slack, e-mails (text and HTML) and texts through Twilio’s API, with templates', async () => {
    const slackConnection = await connection(`${slack.origin}/services/T0/B0/xyz`);
    const sms = await connection(`${twilio.origin}/2010-04-01/Accounts/AC123/Messages.json`, { basic_auth: { username: 'AC123', password: 'token' } });
    const sub = await api('/api/v1/subscriptions', 'POST', {
      name: 'everywhere',
      event_types: ['profile.created', 'event.ingested'],
      event_filter: { events: ['Purchase'], where: [{ property: 'amount', op: 'greater_than', value: 10 }] },
      channels: [
        { type: 'slack', connection_id: slackConnection.id },
        { type: 'email', to: ['ops@example.com'], subject_template: '{{ event_type | upper }} for {{ data.distinct_id }}' },
        { type: 'sms', connection_id: sms.id, from: '+14155550100', to: ['+14155550199'], body_template: '{{ data.distinct_id }} did {{ data.event | default: "something" }}' },
      ],
    });
    expect(sub.status).toBe(201);
    await setProfile('bob', { plan: 'pro' });
    const slackHit = await waitFor('the Slack message', () => slack.received.find((x) => x.body.includes('bob')));
    const message = JSON.parse(slackHit.body) as { text: string; blocks: { type: string }[] };
    expect(message.text).toContain('profile.created');
    expect(message.blocks.map((b) => b.type)).toEqual(['section', 'section', 'context']);
    expect(slackHit.headers['webhook-signature']).toBeUndefined();
    // One event, three channels: its event_id finds each of its deliveries.
    const eventId = /evt_[0-9a-f]+/.exec(JSON.stringify(message.blocks))![0];
    const made = await waitFor('the three deliveries of the event to end', async () => {
      const got = (await api(`/api/v1/deliveries?event_id=${eventId}`)).body.results as { channel: string; state: string }[];
      return got.length === 3 && got.every((d) => d.state === 'succeeded') ? got : undefined;
    });
    expect(made.map((d) => d.channel).sort()).toEqual(['email', 'slack', 'sms']);
    const mail = await waitFor('the e-mail', () => mails().find((m) => m.data.includes('PROFILE.CREATED for bob')));
    expect(mail.to).toEqual(['ops@example.com']);
    expect(mail.data).toMatch(/Content-Type: text\/plain/);
    expect(mail.data).toMatch(/Content-Type: text\/html/);
    const text = await waitFor('the text message', () => twilio.received.find((x) => x.body.includes('bob')));
    expect(Object.fromEntries(new URLSearchParams(text.body))).toEqual({ To: '+14155550199', From: '+14155550100', Body: 'bob did something' });
    expect(text.headers.authorization).toBe(`Basic ${Buffer.from('AC123:token').toString('base64')}`);
    expect(text.path).toBe('/2010-04-01/Accounts/AC123/Messages.json');

    // event.ingested: only Purchase events over 10 are forwarded.
    const track = (event: string, amount: number) => new Promise<void>((resolve, reject) => client().track(event, { distinct_id: 'bob', amount }, (err) => (err ? reject(err) : resolve())));
    await track('Purchase', 5);
    await track('Visit', 50);
    await track('Purchase', 25);
    const purchase = await waitFor('the forwarded purchase', () => twilio.received.find((x) => x.body.includes('Purchase')));
    expect(new URLSearchParams(purchase.body).get('Body')).toBe('bob did Purchase');
    const slackEvents = () => slack.received.map((x) => JSON.parse(x.body) as { text: string }).filter((m) => m.text.includes('event.ingested'));
    await waitFor('the Slack message of the purchase', () => (slackEvents().length > 0 ? true : undefined));
    // The deliveries of the purchase have all ended: nothing else was forwarded.
    await waitFor('every delivery to end', async () => ((await api('/api/v1/deliveries?state=pending')).body.results.length === 0 ? true : undefined));
    expect(slackEvents()).toHaveLength(1);
    const texts = twilio.received.map((x) => new URLSearchParams(x.body).get('Body'));
    expect(texts.filter((t) => t !== 'bob did something')).toEqual(['bob did Purchase']);
  });

  it('fails a delivery whose template does not render JSON, with the reason in its attempt log', async () => {
    const hook = await connection(hooks.url);
    await api('/api/v1/subscriptions', 'POST', { name: 'not json', event_types: ['profile.deleted'], channels: [{ type: 'webhook', connection_id: hook.id, payload_template: '{"who": {{ data.distinct_id }}}' }] });
    await setProfile('carl', { a: 1 });
    await deleteProfile('carl');
    const failed = await waitFor('the failed delivery', async () => (await api(`/api/v1/deliveries?connection_id=${hook.id}&state=failed`)).body.results[0]);
    const shown = (await api(`/api/v1/deliveries/${failed.id}`)).body;
    expect(shown.attempts_log[0]).toMatchObject({ status: null, outcome: 'rejected', reason: expect.stringMatching(/^the payload_template did not render JSON: /) });
    expect(hooks.received.filter((x) => x.body.includes('"who"'))).toEqual([]);
  });

  it('fans an event out to a subscription this process has not heard of yet (made by another process)', async () => {
    const hook = await connection(hooks.url);
    const [fanoutLoop] = svc.service.subscriptions.loops;
    await fanoutLoop!.stop();
    try {
      await api('/api/v1/subscriptions', 'POST', { name: 'fresh', event_types: ['profile.created'], channels: [{ type: 'webhook', connection_id: hook.id }] });
      await setProfile('lena', { plan: 'pro' });
      // A fan-out whose cache was loaded before the subscription existed, as another process's may be.
      const stale = new SubscriptionIndex(svc.service.store, 60_000);
      const fanout = new FanOut({ store: svc.service.store, index: stale, outbox: svc.service.delivery.outbox, batch: 50, sent: () => svc.service.delivery.dispatcher.wake(true) });
      while (await fanout.pass());
      const e = await arrived(hooks, 'lena created', (x) => x.event_type === 'profile.created' && x.data.distinct_id === 'lena');
      const made = (await api(`/api/v1/deliveries?event_id=${e.event_id}`)).body.results as { connection_id: number | null }[];
      expect(made.filter((d) => d.connection_id === hook.id)).toHaveLength(1);
    } finally {
      fanoutLoop!.start();
    }
  });

  it('answers /test with what each channel replied, and lists the event types with samples', async () => {
    const hook = await connection(hooks.url);
    const sub = (await api('/api/v1/subscriptions', 'POST', { name: 'tested', event_types: ['delivery.exhausted'], channels: [{ type: 'webhook', connection_id: hook.id, payload_template: '{"t": {{ event_type | tojson }}, "test": {{ test | default: false }}}' }] })).body;
    const res = await api(`/api/v1/subscriptions/${sub.id}/test`, 'POST');
    expect(res.status).toBe(200);
    expect(res.body.results).toEqual([expect.objectContaining({ event_type: 'delivery.exhausted', type: 'webhook', ok: true, status: 200 })]);
    expect(hooks.received.some((x) => x.body === '{"t": "delivery.exhausted", "test": true}')).toBe(true);
    // Its deliveries, listed by the owner prefix "{id}/" (the owner id also names the channel and event), and no other subscription's.
    const other = (await api('/api/v1/subscriptions', 'POST', { name: 'another', event_types: ['delivery.exhausted'], channels: [{ type: 'webhook', connection_id: hook.id, payload_template: '{"another": true}' }] })).body;
    await api(`/api/v1/subscriptions/${other.id}/test`, 'POST');
    const mine = (await api(`/api/v1/deliveries?owner_kind=subscription-test&owner_id=${sub.id}/`)).body.results as { id: number; owner: { id: string } }[];
    expect(mine).toEqual([expect.objectContaining({ id: res.body.results[0].delivery_id, owner: { kind: 'subscription-test', id: `${sub.id}/0/delivery.exhausted` } })]);
    expect((await api(`/api/v1/deliveries?owner_kind=subscription-test&owner_id=${sub.id}`)).body.results).toEqual([]);
    const types = (await api('/api/v1/event-types')).body.results as { type: string; sample: Envelope }[];
    expect(types.map((t) => t.type)).toEqual(expect.arrayContaining(['profile.created', 'cohort.member_entered', 'event.ingested', 'cohort_sync.paused', 'connection.disabled', 'delivery.exhausted']));
    expect(types.find((t) => t.type === 'cohort.member_entered')!.sample.data).toHaveProperty('cohort');
  });

  it('tells of the service’s own operations: a sync run that succeeded, a connection disabled, a delivery exhausted', async () => {
    const gone = await startReceiver(() => ({ status: 410, body: 'gone' }));
    const down = await startReceiver(() => ({ status: 500, body: 'down' }));
    try {
      const hook = await connection(hooks.url);
      await api('/api/v1/subscriptions', 'POST', { name: 'ops', event_types: ['cohort_sync.run_succeeded', 'connection.disabled', 'delivery.exhausted'], channels: [{ type: 'webhook', connection_id: hook.id }] });
      // A subscription whose receivers fail: one answers 410 (its connection is switched off), one 500 (retries used up).
      const goneConnection = await connection(gone.url);
      const downConnection = await connection(down.url);
      await api('/api/v1/subscriptions', 'POST', { name: 'failing', event_types: ['profile.deleted'], channels: [{ type: 'webhook', connection_id: goneConnection.id }, { type: 'webhook', connection_id: downConnection.id }] });
      await setProfile('dora', { plan: 'pro' });
      await deleteProfile('dora');
      const disabled = await arrived(hooks, 'connection.disabled', (e) => e.event_type === 'connection.disabled');
      expect(disabled.data).toMatchObject({ connection_id: goneConnection.id, reason: expect.stringContaining('410') });
      const exhausted = await arrived(hooks, 'delivery.exhausted', (e) => e.event_type === 'delivery.exhausted');
      expect(exhausted.data).toMatchObject({ connection_id: downConnection.id, channel: 'webhook', attempts: 3, last_error: expect.stringContaining('HTTP 500'), owner: { kind: 'subscription' } });

      const cohort = (await api('/api/v1/cohorts', 'POST', { name: 'Synced', definition: { property: 'plan', op: 'set' } })).body;
      const sync = (await api('/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.id, connection_id: hook.id, one_time: true })).body;
      const succeeded = await arrived(hooks, 'cohort_sync.run_succeeded', (e) => e.event_type === 'cohort_sync.run_succeeded');
      expect(succeeded.data).toMatchObject({ sync_id: sync.id, cohort_id: cohort.id, connection_id: hook.id, run: { kind: 'full', members_removed: 0 } });
    } finally {
      await gone.close();
      await down.close();
    }
  });

  it('refuses bad subscriptions with a clear 400', async () => {
    const hook = await connection(hooks.url);
    const create = (body: Record<string, unknown>) => api('/api/v1/subscriptions', 'POST', { name: 'bad', event_types: ['profile.created'], channels: [{ type: 'webhook', connection_id: hook.id }], ...body });
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ event_types: ['profile.exploded'] }, /^event_types: unknown event type "profile.exploded"; the types are profile.created, /],
      [{ channels: [] }, /channels: must NOT have fewer than 1 items|channels: expected 1 to 10 channels/],
      [{ channels: [{ type: 'webhook', connection_id: 999999 }] }, /^channels\[0\].connection_id: no connection 999999 in this project$/],
      [{ channels: [{ type: 'webhook', connection_id: hook.id, payload_template: '{"a": 1}\n{% if x %}' }] }, /^channels\[0\].payload_template: line 2: /],
      [{ channels: [{ type: 'sms', connection_id: hook.id, from: '+14155550100', to: ['555-0199'] }] }, /^channels\[0\].to: "555-0199" is not an E.164 phone number/],
      [{ channels: [{ type: 'sms', connection_id: hook.id, from: '+14155550100', to: ['+14155550199'] }] }, /an SMS channel's connection must point at Twilio's Messages API/],
      [{ channels: [{ type: 'pager', connection_id: hook.id }] }, /^channels\[0\].type: expected one of webhook, slack, email, sms/],
      [{ event_types: ['cohort.member_entered'] }, /^cohort_ids: cohort.member_entered and cohort.member_exited need the cohorts to watch$/],
      [{ event_filter: { events: ['Purchase'] } }, /^event_filter: only event.ingested uses an event_filter$/],
    ];
    for (const [body, message] of cases) {
      const res = await create(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.message).toMatch(message);
    }
    // A channel's destination is a connection: a private address is refused where the connection is made.
    const privateSlack = await api('/api/v1/connections', 'POST', { name: 'slack', url: 'https://10.1.2.3/services/T0/B0/xyz' });
    expect(privateSlack.status).toBe(400);
    expect(privateSlack.body.error.message).toContain('COHORTCAST_ALLOWED_NETWORKS');
    // Nothing refused was kept.
    expect((await api('/api/v1/subscriptions')).body.results.filter((x: { name: string }) => x.name === 'bad')).toEqual([]);
  });
});

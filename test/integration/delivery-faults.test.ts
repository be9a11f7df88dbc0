import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mostOpenAtOnce } from '../helpers/delivery-backlog.js';
import { startReceiver, type Received, type Receiver, type Reply } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The fault matrix: what each kind of receiver answer (or silence) does to a delivery under each
 * retry policy, checked through the public API and on the receiving end. Real HTTP both ways.
 */

const STANDARD_SCHEDULE = [0, 20, 40, 60];
const COHORT_SYNC_SCHEDULE = [0, 10, 20, 40, 80, 160];
const HANG_TIMEOUT_MS = 300;

const BODY = '{"hello":1}';

interface Attempt {
  attempt: number;
  reason: string | null;
  started_at: string;
  duration_ms: number;
  status: number | null;
  outcome: string;
  error: string | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  worker: string;
}

interface Delivery {
  id: number;
  connection_id: number;
  webhook_id: string;
  policy: string;
  state: 'pending' | 'succeeded' | 'failed' | 'cancelled';
  outcome: string | null;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  attempts_log: Attempt[];
}

interface Connection {
  id: number;
  state: 'active' | 'throttled' | 'disabled';
  disabled_reason: string | null;
  throttled_until: string | null;
}

/** Resolves after `n` looks for due work by the dispatcher that began after this call. */
function discoveries(svc: TestService, n: number): Promise<{ lanes: (number | string)[] }[]> {
  const { events } = svc.service.delivery.dispatcher;
  const seen: { lanes: (number | string)[] }[] = [];
  return new Promise((resolve) => {
    const listener = (e: { lanes: (number | string)[] }) => {
      seen.push(e);
      if (seen.length < n) return;
      events.off('discovered', listener);
      resolve(seen);
    };
    events.on('discovered', listener);
  });
}


describe('delivery fault matrix', () => {
  let svc: TestService;
  let receivers: Receiver[] = [];

  beforeAll(async () => {
    svc = await startTestService((c) => {
      c.logLevel = 'error'; // every failed delivery logs a warning; here they are all on purpose
      c.delivery.allowHttp = true;
      c.delivery.allowedNetworks = ['127.0.0.0/8'];
      c.delivery.standardSchedule = STANDARD_SCHEDULE;
      c.delivery.cohortSyncSchedule = COHORT_SYNC_SCHEDULE;
      c.delivery.jitter = 0;
      c.delivery.pollIntervalMs = 20;
      c.delivery.throttleMs = 200;
      c.delivery.defaultTimeoutMs = 1000;
      c.delivery.maxTimeoutMs = 2000;
      c.delivery.maxResponseBytes = 64 * 1024;
    });
  });
  afterEach(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    receivers = [];
  });
  afterAll(async () => {
    await svc?.close();
  });

  const json = (body: unknown, method = 'POST') => ({ method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  /** A receiver that answers every request to /hook with `reply` (a Location target elsewhere is only recorded). */
  async function receiver(reply: Reply | ((r: Received) => Reply)): Promise<Receiver> {
    const r = await startReceiver((req) => (typeof reply === 'function' ? reply(req) : reply));
    receivers.push(r);
    return r;
  }

  async function createConnection(url: string, extra: { timeout_ms?: number; max_concurrency?: number } = {}) {
    const res = await svc.api('/api/v1/connections', json({ name: `sink ${url}`, url, ...extra }));
    expect(res.status).toBe(201);
    return (await res.json()) as { id: number; signing_secret: string };
  }

  async function getConnection(id: number): Promise<Connection> {
    const res = await svc.api(`/api/v1/connections/${id}`);
    expect(res.status).toBe(200);
    return (await res.json()) as Connection;
  }

  async function getDelivery(id: number): Promise<Delivery> {
    const res = await svc.api(`/api/v1/deliveries/${id}`);
    expect(res.status).toBe(200);
    return (await res.json()) as Delivery;
  }

  async function send(connectionId: number, policy: string, count = 1) {
    const items = Array.from({ length: count }, () => ({
      projectId: svc.project.id,
      connectionId,
      ownerKind: 'test',
      ownerId: 'x',
      policy,
      contentType: 'application/json',
      body: BODY,
    }));
    const created = await svc.service.delivery.outbox.enqueue(svc.service.store.db, items);
    svc.service.delivery.dispatcher.wake(true);
    return created;
  }

  /** The delivery once it is no longer pending. */
  async function finished(id: number, timeoutMs = 10_000): Promise<Delivery> {
    return waitFor(`delivery ${id} to finish`, async () => {
      const d = await getDelivery(id);
      return d.state === 'pending' ? undefined : d;
    }, timeoutMs);
  }

  /** Creates a connection to a receiver answering `reply`, sends one delivery under `policy`, waits for its end. */
  async function deliver(reply: Reply | ((r: Received) => Reply), policy: string, extra: { timeout_ms?: number } = {}) {
    const r = await receiver(reply);
    const connection = await createConnection(r.url, extra);
    const [created] = await send(connection.id, policy);
    const delivery = await finished(created!.id);
    expect(delivery.webhook_id).toBe(created!.webhook_id);
    return { receiver: r, connection, delivery };
  }

  /** Every attempt is logged with its outcome and duration; answered ones with status and headers. */
  function expectAttemptLog(d: Delivery, answered: boolean, status?: number) {
    expect(d.attempts_log).toHaveLength(d.attempts);
    d.attempts_log.forEach((a, i) => {
      expect(a.attempt).toBe(i + 1);
      expect(typeof a.outcome).toBe('string');
      expect(a.duration_ms).toBeGreaterThanOrEqual(0);
      expect(Number.isNaN(Date.parse(a.started_at))).toBe(false);
      if (answered) {
        expect(a.status).toBe(status);
        expect(a.response_headers).toMatchObject({ 'x-receiver': 'fault-matrix' });
        expect(a.error).toBeNull();
      } else {
        expect(a.status).toBeNull();
        expect(a.response_headers).toBeNull();
        expect(a.error).toEqual(expect.any(String));
      }
    });
    // Each says why it was judged so; a success needs no reason.
    for (const a of d.attempts_log) {
      if (a.outcome === 'success') expect(a.reason).toBeNull();
      else expect(a.reason).toEqual(expect.stringMatching(answered ? new RegExp(`^HTTP ${status}|^[a-z]`) : /^(timeout|network|refused): /));
    }
    expect(d.last_error).toBe(d.attempts_log.at(-1)!.reason);
    // Every attempt but the last says "retry"; the last carries the final outcome.
    const outcomes = d.attempts_log.map((a) => a.outcome);
    const final = d.outcome === 'delivered' ? 'success' : d.outcome;
    expect(outcomes).toEqual([...outcomes.slice(0, -1).map(() => 'retry'), final]);
  }

  /** The receiver got `times` requests for this delivery, same webhook-id and body, each freshly and validly signed. */
  function expectSignedRetries(r: Receiver, secret: string, d: Delivery, times: number) {
    const hits = r.received.filter((x) => x.path === '/hook');
    expect(hits).toHaveLength(times);
    for (const hit of hits) {
      expect(hit.method).toBe('POST');
      expect(hit.headers['webhook-id']).toBe(d.webhook_id);
      expect(hit.headers['content-type']).toBe('application/json');
      expect(hit.body).toBe(BODY);
      expect(() => new Webhook(secret).verify(hit.body, hit.headers as Record<string, string>)).not.toThrow();
    }
  }

  const answer = (status: number, body = '', headers: Record<string, string> = {}): Reply => ({ status, body, headers: { 'x-receiver': 'fault-matrix', ...headers } });

  describe("policy 'standard'", () => {
    it.each([200, 201, 204])('%i: delivered on the first attempt', async (status) => {
      const { receiver: r, connection, delivery } = await deliver(answer(status, status === 204 ? '' : '{"ok":true}'), 'standard');
      expect(delivery).toMatchObject({ state: 'succeeded', outcome: 'delivered', attempts: 1, last_status: status, last_error: null });
      expectAttemptLog(delivery, true, status);
      expectSignedRetries(r, connection.signing_secret, delivery, 1);
    });

    it('301: the redirect is not followed, the delivery is retried until exhausted', async () => {
      const { receiver: r, connection, delivery } = await deliver(
        (req) => (req.path === '/hook' ? answer(301, '', { location: '/moved' }) : answer(200, '{"ok":true}')),
        'standard',
      );
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'exhausted', attempts: STANDARD_SCHEDULE.length, last_status: 301 });
      expect(r.received.filter((x) => x.path !== '/hook')).toEqual([]);
      expectAttemptLog(delivery, true, 301);
      expect(delivery.attempts_log[0]!.response_headers!.location).toBe('/moved');
      expectSignedRetries(r, connection.signing_secret, delivery, STANDARD_SCHEDULE.length);
    });

    it.each([400, 401, 403, 404, 500])('%i: retried on schedule until exhausted', async (status) => {
      const { receiver: r, connection, delivery } = await deliver(answer(status, `{"error":"no ${status}"}`), 'standard');
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'exhausted', attempts: STANDARD_SCHEDULE.length, last_status: status });
      expect(delivery.last_error).toContain(`HTTP ${status}`);
      expect(delivery.last_error).toContain(`no ${status}`);
      expectAttemptLog(delivery, true, status);
      expectSignedRetries(r, connection.signing_secret, delivery, STANDARD_SCHEDULE.length);
      // The schedule is honoured: attempt n waits at least schedule[n] after attempt n-1 ended.
      const starts = delivery.attempts_log.map((a) => Date.parse(a.started_at));
      for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(STANDARD_SCHEDULE[i]!);
    });

    it('410: rejected after one attempt, and the connection is disabled', async () => {
      const { receiver: r, connection, delivery } = await deliver(answer(410, '{"error":"gone"}'), 'standard');
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'rejected', attempts: 1, last_status: 410 });
      expectAttemptLog(delivery, true, 410);
      expectSignedRetries(r, connection.signing_secret, delivery, 1);
      const shown = await getConnection(connection.id);
      expect(shown.state).toBe('disabled');
      expect(shown.disabled_reason).toContain('410');

      // Nothing more goes to a disabled destination: the dispatcher looks for due work twice after
      // this one is queued, does not find its connection among those it may send to, and never tries it.
      const looked = discoveries(svc, 2);
      const [next] = await send(connection.id, 'standard');
      for (const d of await looked) expect(d.lanes).not.toContain(connection.id);
      expect((await getDelivery(next!.id))).toMatchObject({ state: 'pending', attempts: 0 });
      expect(r.received).toHaveLength(1);
    });

    it('429 with Retry-After: the connection is throttled and attempts are spaced by Retry-After, then exhausted', async () => {
      const r = await receiver(answer(429, '{"error":"slow down"}', { 'retry-after': '1' }));
      const connection = await createConnection(r.url);
      const [created] = await send(connection.id, 'standard');
      const first = await waitFor('the first attempt', async () => (await getDelivery(created!.id)).attempts_log[0]);
      // The whole connection is held back for the Retry-After from the moment the answer was judged.
      const firstEnd = Date.parse(first.started_at) + first.duration_ms;
      const { throttled_until: until } = await svc.service.store.db.selectFrom('connections').select('throttled_until').where('id', '=', connection.id).executeTakeFirstOrThrow();
      expect(until).toBeGreaterThanOrEqual(firstEnd + 1000 - 5);
      expect(until).toBeLessThan(firstEnd + 1000 + 5000);
      // The API calls it throttled while that lasts (read fast enough to tell; otherwise it has ended and says active).
      const askedAt = Date.now();
      const shown = await getConnection(connection.id);
      if (Date.now() < until!) expect(shown).toMatchObject({ state: 'throttled', throttled_until: new Date(until!).toISOString() });
      else if (askedAt >= until!) expect(shown.state).toBe('active');

      const delivery = await finished(created!.id);
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'exhausted', attempts: STANDARD_SCHEDULE.length, last_status: 429 });
      expectAttemptLog(delivery, true, 429);
      expect(delivery.attempts_log[0]!.response_headers!['retry-after']).toBe('1');
      expectSignedRetries(r, connection.signing_secret, delivery, STANDARD_SCHEDULE.length);
      const arrivals = r.received.map((x) => x.at);
      for (let i = 1; i < arrivals.length; i++) expect(arrivals[i]! - arrivals[i - 1]!).toBeGreaterThanOrEqual(950);
      // A second apart, so every retry carries a new timestamp and so a new signature.
      const signatures = r.received.map((x) => x.headers['webhook-signature']);
      expect(new Set(signatures).size).toBe(signatures.length);
      const stamps = r.received.map((x) => Number(x.headers['webhook-timestamp']));
      for (let i = 1; i < stamps.length; i++) expect(stamps[i]!).toBeGreaterThan(stamps[i - 1]!);
    });

    it('a receiver that never answers: every attempt times out, then exhausted', async () => {
      const { receiver: r, connection, delivery } = await deliver({ hang: true }, 'standard', { timeout_ms: HANG_TIMEOUT_MS });
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'exhausted', attempts: STANDARD_SCHEDULE.length, last_status: null });
      expectAttemptLog(delivery, false);
      for (const a of delivery.attempts_log) {
        expect(a.error).toMatch(/timeout/i);
        expect(a.duration_ms).toBeGreaterThanOrEqual(HANG_TIMEOUT_MS - 50);
        expect(a.duration_ms).toBeLessThan(HANG_TIMEOUT_MS + 2000);
        expect(a.response_body).toBeNull();
      }
      expectSignedRetries(r, connection.signing_secret, delivery, STANDARD_SCHEDULE.length);
      // The engine hung up on each timed-out request rather than leaving it open.
      await waitFor('the receiver to see every request closed', () => (r.open === 0 ? true : undefined), 2000);
      expect(r.received.every((x) => x.closedEarly)).toBe(true);
    });

    it('a connection reset: a network error on each attempt, then exhausted', async () => {
      const { receiver: r, connection, delivery } = await deliver({ reset: true }, 'standard');
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'exhausted', attempts: STANDARD_SCHEDULE.length, last_status: null });
      expectAttemptLog(delivery, false);
      for (const a of delivery.attempts_log) expect(a.error).toMatch(/^network: /);
      expect(delivery.last_error).toMatch(/^network: /);
      expectSignedRetries(r, connection.signing_secret, delivery, STANDARD_SCHEDULE.length);
    });

    it('a reply holding NUL and a long multi-byte text is recorded (cleaned, cut on a character boundary) on both databases', async () => {
      const body = `a\u0000b${'é'.repeat(2000)}`;
      const { delivery } = await deliver(answer(500, body), 'mixpanel-message');
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'failed', attempts: 1, last_status: 500 });
      const stored = delivery.attempts_log[0]!.response_body!;
      expect(stored.startsWith('a\ufffdb')).toBe(true);
      expect(Buffer.byteLength(stored)).toBeLessThanOrEqual(1024);
      expect(stored.endsWith('é')).toBe(true);
    });

    it('a slow answer inside the timeout is a success', async () => {
      const { delivery } = await deliver({ ...answer(200, '{"ok":true}'), delayMs: 100 }, 'standard');
      expect(delivery).toMatchObject({ state: 'succeeded', outcome: 'delivered', attempts: 1 });
      expectAttemptLog(delivery, true, 200);
      expect(delivery.attempts_log[0]!.duration_ms).toBeGreaterThanOrEqual(90);
    });

    it('a 100 MB answer is cut off at the read cap and still counts as delivered', async () => {
      const total = 100 * 1024 * 1024;
      const { receiver: r, delivery } = await deliver({ status: 200, headers: { 'x-receiver': 'fault-matrix' }, streamBytes: total }, 'standard');
      expect(delivery).toMatchObject({ state: 'succeeded', outcome: 'delivered', attempts: 1, last_status: 200 });
      expectAttemptLog(delivery, true, 200);
      const stored = delivery.attempts_log[0]!.response_body!;
      expect(stored.length).toBeGreaterThan(0);
      expect(stored.length).toBeLessThanOrEqual(1024);
      // The engine dropped the connection; the receiver noticed and stopped writing.
      const hit = await waitFor('the receiver to see the client go away', () => (r.received[0]?.closedEarly ? r.received[0] : undefined), 5000);
      expect(hit.bytesSent).toBeLessThan(total);
      expect(r.open).toBe(0);
    });
  });

  describe("policy 'mixpanel-cohort-sync'", () => {
    it('200 with status "success": delivered', async () => {
      const { delivery } = await deliver(answer(200, '{"action":"members","status":"success"}'), 'mixpanel-cohort-sync');
      expect(delivery).toMatchObject({ state: 'succeeded', outcome: 'delivered', attempts: 1 });
      expectAttemptLog(delivery, true, 200);
    });

    it('200 with status "failure" and code 400: rejected after one attempt, with the receiver\'s message', async () => {
      const { connection, delivery } = await deliver(
        answer(200, '{"action":"members","status":"failure","error":{"message":"bad list","code":400}}'),
        'mixpanel-cohort-sync',
      );
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'rejected', attempts: 1, last_status: 200 });
      expect(delivery.last_error).toContain('bad list');
      expectAttemptLog(delivery, true, 200);
      // A refused cohort does not switch the destination off.
      expect((await getConnection(connection.id)).state).toBe('active');
    });

    it('200 with status "failure" and code 500: retried, then exhausted', async () => {
      const { receiver: r, connection, delivery } = await deliver(
        answer(200, '{"action":"members","status":"failure","error":{"message":"try later","code":500}}'),
        'mixpanel-cohort-sync',
      );
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'exhausted', attempts: COHORT_SYNC_SCHEDULE.length, last_status: 200 });
      expect(delivery.last_error).toContain('try later');
      expectAttemptLog(delivery, true, 200);
      expectSignedRetries(r, connection.signing_secret, delivery, COHORT_SYNC_SCHEDULE.length);
    });

    it('404: rejected after one attempt', async () => {
      const { delivery } = await deliver(answer(404, '{"error":"no such list"}'), 'mixpanel-cohort-sync');
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'rejected', attempts: 1, last_status: 404 });
      expectAttemptLog(delivery, true, 404);
    });

    it('503: retried, then exhausted', async () => {
      const { receiver: r, connection, delivery } = await deliver(answer(503, '{"error":"busy"}'), 'mixpanel-cohort-sync');
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'exhausted', attempts: COHORT_SYNC_SCHEDULE.length, last_status: 503 });
      expectAttemptLog(delivery, true, 503);
      expectSignedRetries(r, connection.signing_secret, delivery, COHORT_SYNC_SCHEDULE.length);
    });
  });

  describe("policy 'mixpanel-message'", () => {
    it('200: delivered', async () => {
      const { delivery } = await deliver(answer(200, '{"ok":true}'), 'mixpanel-message');
      expect(delivery).toMatchObject({ state: 'succeeded', outcome: 'delivered', attempts: 1 });
      expectAttemptLog(delivery, true, 200);
    });

    it('201: failed after exactly one attempt (only 200 counts)', async () => {
      const { receiver: r, delivery } = await deliver(answer(201, '{"ok":true}'), 'mixpanel-message');
      expect(delivery).toMatchObject({ state: 'failed', outcome: 'failed', attempts: 1, last_status: 201 });
      expectAttemptLog(delivery, true, 201);
      expect(r.received).toHaveLength(1);
    });
  });

  it('fairness: a hanging destination holds only its own slots; a healthy one keeps flowing', async () => {
    const hanging = await receiver({ hang: true });
    const healthy = await receiver(answer(200, '{"ok":true}'));
    const stuck = await createConnection(hanging.url, { timeout_ms: HANG_TIMEOUT_MS, max_concurrency: 2 });
    const fine = await createConnection(healthy.url);
    const [stuckDeliveries, fineDeliveries] = await Promise.all([send(stuck.id, 'standard', 20), send(fine.id, 'standard', 50)]);
    expect(stuckDeliveries).toHaveLength(20);
    expect(fineDeliveries).toHaveLength(50);

    const list = async (connectionId: number) => {
      const res = await svc.api(`/api/v1/deliveries?connection_id=${connectionId}&limit=100`);
      expect(res.status).toBe(200);
      return ((await res.json()) as { results: Omit<Delivery, 'attempts_log'>[] }).results;
    };
    const healthyDone = await waitFor('all 50 healthy deliveries to finish', async () => {
      const rows = await list(fine.id);
      return rows.every((d) => d.state !== 'pending') ? rows : undefined;
    });
    const stuckNow = await list(stuck.id);

    expect(healthyDone).toHaveLength(50);
    expect(healthyDone.every((d) => d.state === 'succeeded' && d.outcome === 'delivered' && d.attempts === 1)).toBe(true);
    expect(new Set(healthy.received.map((x) => x.headers['webhook-id'])).size).toBe(50);
    // The hanging destination had not even finished its second round (20 × 2 attempts) when the healthy one was done.
    const stuckAttempts = stuckNow.reduce((n, d) => n + d.attempts, 0);
    expect(stuckAttempts).toBeLessThan(40);
    expect(stuckNow.every((d) => d.state === 'pending')).toBe(true);
    expect(hanging.received.length).toBeGreaterThan(0);

    // Stop the rest of the hanging work: deleting the connection cancels what still waits.
    expect((await svc.api(`/api/v1/connections/${stuck.id}`, { method: 'DELETE' })).status).toBe(204);
    await waitFor('in-flight hanging attempts to end', () => (hanging.open === 0 ? true : undefined), 5000);
    // It never had more than its max_concurrency (2) attempts open at once, by the engine's own log.
    const logged = await waitFor('every hanging attempt to be logged', async () => {
      const all = (await Promise.all(stuckDeliveries.map((d) => getDelivery(d.id)))).flatMap((d) => d.attempts_log);
      return all.length >= hanging.received.length ? all : undefined;
    });
    expect(mostOpenAtOnce(logged)).toBeLessThanOrEqual(2);
  });
});

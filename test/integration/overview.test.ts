import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type Receiver, type Reply } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * GET /api/v1/overview, on either database: events by minute, deliveries finished by outcome,
 * the queue's depth and earliest due time, failing connections and paused syncs, each from real
 * traffic (ingestion, a receiver that accepts, one that refuses, one that is gone, one due later).
 */
let svc: TestService;
const receivers: Receiver[] = [];

beforeAll(async () => {
  svc = await startTestService((config) => {
    config.delivery.allowHttp = true;
    config.delivery.allowedNetworks = ['127.0.0.0/8'];
    // One attempt, then given up: refusals end at once.
    config.delivery.standardSchedule = [0];
    config.delivery.cohortSyncSchedule = [0];
  });
});

afterAll(async () => {
  await svc?.close();
  await Promise.all(receivers.map((r) => r.close()));
});

async function connectionTo(reply: Reply) {
  const r = await startReceiver(() => reply);
  receivers.push(r);
  const created = await svc.json('/api/v1/connections', 'POST', { name: `answers ${'status' in reply ? reply.status : '?'}`, url: r.url });
  expect(created.status).toBe(201);
  return created.body.id as number;
}

async function send(connectionId: number, notBefore?: number) {
  const [d] = await svc.service.delivery.outbox.enqueue(svc.service.store.db, [
    { projectId: svc.project.id, connectionId, ownerKind: 'test', ownerId: 'overview', policy: 'standard', contentType: 'application/json', body: '{"hello":1}', notBefore },
  ]);
  svc.service.delivery.dispatcher.wake(true);
  return d!.id;
}

const delivery = (id: number) => svc.json(`/api/v1/deliveries/${id}`).then((r) => r.body);

describe('the overview', () => {
  it('counts what happened this hour and what needs attention', async () => {
    const before = await svc.json('/api/v1/overview');
    expect(before.status).toBe(200);
    expect(before.body.minutes).toHaveLength(60);
    expect(before.body.queue).toEqual({ pending: 0, pending_capped: false, oldest_due_at: null });

    const now = Date.now();
    const events = [0, 0, 0, -61_000].map((ago, i) => ({ event: 'Viewed', properties: { token: svc.project.token, distinct_id: `u${i}`, time: now + ago, $insert_id: `ov-${i}` } }));
    const res = await fetch(`${svc.url}/track`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) });
    expect(await res.text()).toBe('1');

    const ok = await connectionTo({ status: 200, body: '{}' });
    const refusing = await connectionTo({ status: 400, body: '{"error":"no"}' });
    const gone = await connectionTo({ status: 410, body: '{"error":"gone"}' });
    const ids = [await send(ok), await send(ok), await send(refusing), await send(gone)];
    const later = await send(ok, now + 120_000);
    await waitFor('the deliveries to be answered', async () => ((await Promise.all(ids.map(delivery))).every((d) => d.state !== 'pending') ? true : undefined));
    expect((await delivery(later)).state).toBe('pending');

    // A sync whose receiver refuses its export is paused with the receiver's words.
    await fetch(`${svc.url}/engage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ $token: svc.project.token, $distinct_id: 'p1', $set: { plan: 'pro' } }]) });
    const cohort = await svc.json('/api/v1/cohorts', 'POST', { name: 'Pros', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    const quota = await startReceiver(() => ({ status: 400, body: '{"error":"cohort quota exceeded"}' }));
    receivers.push(quota);
    const syncTarget = await svc.json('/api/v1/connections', 'POST', { name: 'quota', url: quota.url });
    const sync = await svc.json('/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.body.id, connection_id: syncTarget.body.id });
    expect(sync.status).toBe(201);
    await waitFor('the sync to pause', async () => ((await svc.json(`/api/v1/cohort-syncs/${sync.body.id}`)).body.state === 'paused' ? true : undefined));

    type Minute = Record<string, number>;
    const sum = (minutes: Minute[], key: string) => minutes.reduce((n, m) => n + m[key]!, 0);
    // Accepted events are written by the ingestion's batching writer within moments.
    const after = await waitFor('the events to be counted', async () => {
      const o = (await svc.json('/api/v1/overview')).body;
      return sum(o.minutes, 'events') === 4 ? o : undefined;
    });
    const total = (key: string) => sum(after.minutes, key);
    // The event a minute older is in an earlier bucket than the other three.
    expect(after.minutes.filter((m: { events: number }) => m.events > 0).map((m: { events: number }) => m.events).sort()).toEqual([1, 3]);
    expect(total('succeeded')).toBe(2);
    expect(total('failed')).toBeGreaterThanOrEqual(3); // the 400, the 410 and the sync's refused page
    expect(after.queue.pending).toBe(1);
    expect(Date.parse(after.queue.oldest_due_at)).toBe(now + 120_000);
    expect(after.failing_connections).toEqual([expect.objectContaining({ id: gone, state: 'disabled', reason: expect.stringContaining('410') })]);
    expect(after.paused_syncs).toEqual([{ id: sync.body.id, cohort_id: cohort.body.id, connection_id: syncTarget.body.id, reason: expect.stringContaining('cohort quota exceeded') }]);
    expect(after.paused_syncs_count).toBe(1);
    expect(after.events_capped).toBe(false);
  });

  it('refuses a window longer than a day, saying the limit', async () => {
    const res = await svc.json('/api/v1/overview?minutes=2000');
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe('minutes can be at most 1440 (24 hours); 2000 was asked');
  });
});

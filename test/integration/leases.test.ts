import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cancelHeldDelivery,
  claimDeliveries,
  claimSchedules,
  completeSchedule,
  recordAttempts,
  releaseDeliveryLeases,
  renewDeliveryLease,
  renewScheduleLease,
  type AttemptOutcomeRow,
  type ClaimedDelivery,
} from '../../src/store/leases.js';
import { putSchedule, scheduleNow } from '../../src/store/schedules-repo.js';
import { every } from '../../src/scheduling/timing.js';
import { dialectUnderTest } from '../helpers/database.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * The lease module on the database under test: every renewal and outcome is checked against the
 * token of the claim that made it, for deliveries and for schedules. Times are passed in, so a
 * lease "runs out" without waiting.
 */
let svc: TestService;
let connectionId: number;

beforeAll(async () => {
  svc = await startTestService((c) => {
    c.delivery.allowHttp = true;
    c.delivery.allowedNetworks = ['127.0.0.0/8'];
  });
  const res = await svc.json('/api/v1/connections', 'POST', { name: 'leases', url: 'http://127.0.0.1:9/never' });
  connectionId = res.body.id;
  // The service's own dispatcher must not touch these rows: the connection is disabled for it.
  await svc.service.store.db.updateTable('connections').set({ disabled_at: Date.now() }).where('id', '=', connectionId).execute();
});
afterAll(() => svc?.close());

async function oneDelivery(): Promise<number> {
  const [d] = await svc.service.delivery.outbox.enqueue(svc.service.store.db, [
    { projectId: svc.project.id, connectionId, ownerKind: 'test', ownerId: 1, policy: 'standard', contentType: 'application/json', body: '{}', notBefore: 0 },
  ]);
  return d!.id;
}

const outcome = (d: ClaimedDelivery, state: 'succeeded' | 'failed', at: number): AttemptOutcomeRow => ({
  id: d.id,
  token: d.lease_token,
  attempts: d.attempts + 1,
  roundAttempts: d.round_attempts + 1,
  startedAt: at,
  state,
  outcome: state === 'succeeded' ? 'delivered' : 'rejected',
  nextAttemptAt: at,
  lastStatus: state === 'succeeded' ? 200 : 400,
  lastError: null,
  completedAt: at,
  headers: null,
});

const attemptRow = (d: ClaimedDelivery, worker: string, at: number, status: number) => ({
  delivery_id: d.id,
  attempt: d.attempts + 1,
  worker,
  started_at: at,
  duration_ms: 1,
  status,
  response_headers: null,
  response_body: null,
  error: null,
  outcome: status === 200 ? 'success' : 'rejected',
  reason: status === 200 ? null : `HTTP ${status}`,
});

describe(`delivery leases on ${dialectUnderTest}`, () => {
  it('renews a lease only for the claim that holds it: not after it ran out, not for a later claim', async () => {
    const { store } = svc.service;
    await oneDelivery();
    const t0 = Date.now();
    const [mine] = await claimDeliveries(store, { connectionId }, 1, 'worker-a', t0, 1000);
    expect(mine!.next_attempt_at).toBe(t0 + 1000);
    // While held: nobody else can claim it, and its claim can extend it.
    expect(await claimDeliveries(store, { connectionId }, 1, 'worker-b', t0 + 500, 1000)).toHaveLength(0);
    expect(await renewDeliveryLease(store, mine!.id, mine!.lease_token, t0 + 500, 1000)).toBe(t0 + 1500);
    expect(await renewDeliveryLease(store, mine!.id, 'worker-b#1', t0 + 600, 1000)).toBeUndefined();
    // Once it ran out, it is claimable again, and the old claim's renewal no longer applies.
    expect(await renewDeliveryLease(store, mine!.id, mine!.lease_token, t0 + 1600, 1000)).toBeUndefined();
    const [again] = await claimDeliveries(store, { connectionId }, 1, 'worker-a', t0 + 1600, 1000);
    expect(again!.id).toBe(mine!.id);
    expect(again!.lease_token).not.toBe(mine!.lease_token);
    expect(await renewDeliveryLease(store, mine!.id, mine!.lease_token, t0 + 1700, 1000)).toBeUndefined();
    expect(await renewDeliveryLease(store, mine!.id, again!.lease_token, t0 + 1700, 1000)).toBe(t0 + 2700);
    await releaseDeliveryLeases(store, [{ id: again!.id, token: again!.lease_token }], t0 + 1800);
  });

  it('refuses the outcome of a stale attempt, even when the same worker claimed the delivery again', async () => {
    const { store } = svc.service;
    const id = await oneDelivery();
    const t0 = Date.now();
    const [first] = await claimDeliveries(store, { connectionId }, 1, 'worker-a', t0, 1000);
    expect(first!.id).toBe(id);
    // The first attempt hangs past its lease; the same worker claims the delivery again.
    const [second] = await claimDeliveries(store, { connectionId }, 1, 'worker-a', t0 + 1500, 1000);
    expect(second!.id).toBe(id);
    // The stale attempt answers (a refusal): logged, but the delivery's state is not its to change.
    const stale = await store.db.transaction().execute((trx) => recordAttempts(store, trx, [attemptRow(first!, 'worker-a', t0 + 1600, 400)], [outcome(first!, 'failed', t0 + 1600)], t0 + 1600));
    expect([...stale]).toEqual([]);
    const meanwhile = await store.db.selectFrom('deliveries').select(['state', 'lease_token', 'attempts']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(meanwhile).toEqual({ state: 'pending', lease_token: second!.lease_token, attempts: 0 });
    // Cancelling and giving back under the stale claim change nothing either.
    await cancelHeldDelivery(store, id, first!.lease_token, 'stale', t0 + 1650);
    await releaseDeliveryLeases(store, [{ id, token: first!.lease_token }], t0 + 1650);
    expect((await store.db.selectFrom('deliveries').select('lease_token').where('id', '=', id).executeTakeFirstOrThrow()).lease_token).toBe(second!.lease_token);
    // The current claim's outcome is the one that counts.
    const current = await store.db.transaction().execute((trx) => recordAttempts(store, trx, [attemptRow(second!, 'worker-a', t0 + 1700, 200)], [outcome(second!, 'succeeded', t0 + 1700)], t0 + 1700));
    expect([...current]).toEqual([id]);
    const row = await store.db.selectFrom('deliveries').select(['state', 'outcome', 'lease_token', 'last_status']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toEqual({ state: 'succeeded', outcome: 'delivered', lease_token: null, last_status: 200 });
    // Both attempts are in the log.
    const log = await store.db.selectFrom('delivery_attempts').select('status').where('delivery_id', '=', id).orderBy('id').execute();
    expect(log.map((a) => a.status)).toEqual([400, 200]);
  });
});

describe(`schedule leases on ${dialectUnderTest}`, () => {
  // A kind no handler in the service is registered for: only this test claims it.
  const kind = 'lease-test';

  it('gives a due run to one claim at a time, and completes it only under that claim', async () => {
    const { store } = svc.service;
    const t0 = Date.now();
    await putSchedule(store.db, { kind, key: 'a', timing: every(60_000), nextRunAt: t0 }, t0);
    const [job] = await claimSchedules(store, [kind], 5, 'worker-a', t0 + 10, 1000);
    expect(job).toMatchObject({ kind, key: 'a', next_run_at: t0, lease_owner: 'worker-a' });
    expect(await claimSchedules(store, [kind], 5, 'worker-b', t0 + 20, 1000)).toEqual([]);
    // Kinds this process has no handler for are never claimed.
    expect(await claimSchedules(store, ['other-kind'], 5, 'worker-b', t0 + 20, 1000)).toEqual([]);
    expect(await renewScheduleLease(store, job!.id, job!.lease_token, t0 + 500, 1000)).toBe(true);
    // The lease runs out; another worker takes the run over.
    const [taken] = await claimSchedules(store, [kind], 5, 'worker-b', t0 + 1600, 1000);
    expect(taken!.id).toBe(job!.id);
    expect(await renewScheduleLease(store, job!.id, job!.lease_token, t0 + 1700, 1000)).toBe(false);
    expect(await completeSchedule(store, { id: job!.id, token: job!.lease_token, planned: t0, next: t0 + 60_000, missed: 0, error: null }, t0 + 1700)).toBe(false);
    expect(await completeSchedule(store, { id: taken!.id, token: taken!.lease_token, planned: t0, next: t0 + 60_000, missed: 0, error: null }, t0 + 1800)).toBe(true);
    const row = await store.db.selectFrom('schedules').selectAll().where('id', '=', job!.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ next_run_at: t0 + 60_000, lease_token: null, runs: 1, last_error: null });
  });

  it('keeps a run asked for while one was going', async () => {
    const { store } = svc.service;
    const t0 = Date.now();
    await putSchedule(store.db, { kind, key: 'b', timing: every(60_000), nextRunAt: t0 }, t0);
    const [job] = await claimSchedules(store, [kind], 1, 'worker-a', t0 + 10, 10_000);
    expect(job!.key).toBe('b');
    expect(await scheduleNow(store.db, kind, 'b', t0 + 20)).toBe(true);
    expect(await completeSchedule(store, { id: job!.id, token: job!.lease_token, planned: t0, next: t0 + 60_000, missed: 0, error: null }, t0 + 30)).toBe(true);
    const row = await store.db.selectFrom('schedules').select('next_run_at').where('id', '=', job!.id).executeTakeFirstOrThrow();
    expect(row.next_run_at).toBe(t0 + 20);
  });
});

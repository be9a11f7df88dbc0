import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETENTION_KIND } from '../../src/retention/pruner.js';
import { SWEEP_KIND } from '../../src/cohort-sync/sweep.js';
import { insertDeliveries } from '../../src/store/outbox-repo.js';
import type { Store } from '../../src/store/database.js';
import { dialectUnderTest } from '../helpers/database.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, type TestService } from '../helpers/service.js';

/**
 * Retention on the database the suite runs against, on an injected clock: every kind of row on
 * both sides of its horizon, and the rows that must outlive it (a resumable run's deliveries, a
 * sync's base and current runs, pending work, the message ledger). The storage report must name
 * beforehand exactly what the pass then removes. Slices of 2 to 4 rows and a 1 ms budget per run
 * make the pass many slices over many scheduler runs, so the cursors and the 'more' hand-back
 * are exercised too.
 */
const DAY = 86_400_000;
const HOUR = 3_600_000;
const clock = Date.now();

let svc: TestService;
let receiver: Receiver;
let store: Store;
let connectionId: number;
let syncId: number;
const ids: Record<string, number> = {};

async function delivery(name: string, o: { state: 'pending' | 'succeeded' | 'failed' | 'cancelled'; ageMs: number; completedAgoMs?: number; body?: string; ownerKind?: string; ownerId?: string }) {
  const [d] = await insertDeliveries(
    store.db,
    [{ projectId: svc.project.id, channel: 'webhook', connectionId, webhookId: `msg_${crypto.randomUUID()}`, ownerKind: o.ownerKind ?? 'test', ownerId: o.ownerId ?? name, policy: 'standard', contentType: 'application/json', body: o.body ?? JSON.stringify({ name }), headers: {}, notBefore: Date.now() + 30 * DAY }],
    clock - o.ageMs,
  );
  const completed = o.state === 'pending' ? null : clock - (o.completedAgoMs ?? o.ageMs);
  await store.db.updateTable('deliveries').set({ state: o.state, completed_at: completed, attempts: 1 }).where('id', '=', d!.id).execute();
  // A delivery that ended has no queue row (PostgreSQL's delivery_queue), as when the dispatcher ends it.
  if (store.dialect === 'postgres' && o.state !== 'pending') await store.db.deleteFrom('delivery_queue').where('delivery_id', '=', d!.id).execute();
  await store.db
    .insertInto('delivery_attempts')
    .values({ delivery_id: d!.id, attempt: 1, worker: 'w', started_at: clock - o.ageMs, duration_ms: 3, status: 200, response_headers: null, response_body: 'ok', error: null, outcome: 'delivered', reason: null } as never)
    .execute();
  ids[name] = d!.id;
}

async function run(name: string, o: { state: 'succeeded' | 'abandoned' | 'paused'; finishedAgoMs: number | null; stale?: number; snapshotChunks?: number; pages?: { page: number; deliveryId: number }[] }) {
  const row = await store.db
    .insertInto('sync_runs')
    .values({ sync_id: syncId, session_id: crypto.randomUUID(), kind: 'full', state: o.state, base_run_id: null, total_pages: 1, pages_acked: 1, members: 1, members_added: 1, members_removed: 0, error: null, started_at: clock - 11 * DAY, finished_at: o.finishedAgoMs === null ? null : clock - o.finishedAgoMs, cohort_name: 'c', cohort_description: null, stale: o.stale ?? 0 })
    .returning('id')
    .executeTakeFirstOrThrow();
  for (let chunk = 0; chunk < (o.snapshotChunks ?? 0); chunk++) {
    await store.db.insertInto('sync_snapshots').values({ run_id: row.id, chunk, first_id: 'a', last_id: 'b', member_count: 2, ids: '["a","b"]' }).execute();
  }
  for (const p of o.pages ?? []) {
    await store.db.insertInto('sync_pages').values({ run_id: row.id, page: p.page, action: 'members', first_id: 'a', last_id: 'b', member_count: 2, scan: 0, state: o.state === 'paused' ? 'stopped' : 'acked', delivery_id: p.deliveryId }).execute();
    await store.db.insertInto('sync_page_ids').values({ run_id: row.id, page: p.page, ids: '["a","b"]' }).execute();
  }
  ids[name] = row.id;
}

const exists = async (table: 'deliveries' | 'sync_runs' | 'webhook_events' | 'alert_checks' | 'message_batches', id: number) =>
  (await store.db.selectFrom(table).select('id').where('id', '=', id).executeTakeFirst()) !== undefined;

beforeAll(async () => {
  receiver = await startReceiver();
  svc = await startTestService(
    (config) => {
      config.delivery.allowHttp = true;
      config.delivery.allowedNetworks = ['127.0.0.0/8'];
      config.scheduler.pollIntervalMs = 60_000;
      Object.assign(config.retention, {
        deliveriesMs: 2 * DAY,
        bodiesMs: 1 * DAY,
        subscriptionEventsMs: 1 * DAY,
        syncRunsMs: 2 * DAY,
        alertChecksMs: 2 * DAY,
        eventsMs: 3 * DAY,
        intervalMs: 7 * DAY,
        sliceRows: 2,
        maxSliceRows: 4,
        slicePauseMs: 0,
        runBudgetMs: 1,
      });
    },
    { now: () => clock },
  );
  store = svc.service.store;
  // No fan-out: an event it has not fanned out yet must stay, so it must not fan it out meanwhile.
  for (const loop of svc.service.subscriptions.loops) await loop.stop();
  connectionId = (await svc.json('/api/v1/connections', 'POST', { name: 'r', url: receiver.url })).body.id;
  const cohortId = (await svc.json('/api/v1/cohorts', 'POST', { name: 'all', definition: { property: 'plan', op: 'equals', value: 'pro' } })).body.id;
  syncId = (
    await store.db
      .insertInto('cohort_syncs')
      .values({ project_id: svc.project.id, cohort_id: cohortId, connection_id: connectionId, properties_to_export: '[]', owner_emails: '[]', interval_ms: DAY, state: 'active', state_reason: null, base_run_id: null, base_at: null, current_run_id: null, created_at: clock, updated_at: clock } as never)
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;

  // In the order they were made, as ids follow creation.
  await delivery('oldSucceeded', { state: 'succeeded', ageMs: 10 * DAY, body: 'x'.repeat(20_000) });
  await delivery('pendingOld', { state: 'pending', ageMs: 10 * DAY });
  await delivery('resumablePage', { state: 'failed', ageMs: 10 * DAY, ownerKind: 'cohort-sync' });
  await delivery('ackedPage', { state: 'succeeded', ageMs: 10 * DAY, ownerKind: 'cohort-sync' });
  await delivery('oldFailed', { state: 'failed', ageMs: 5 * DAY, completedAgoMs: 3 * DAY });
  await delivery('oldCancelled', { state: 'cancelled', ageMs: 4 * DAY });
  await delivery('finishedLately', { state: 'succeeded', ageMs: 3 * DAY, completedAgoMs: 12 * HOUR });
  await delivery('bodyOnly', { state: 'succeeded', ageMs: 36 * HOUR, body: 'y'.repeat(20_000) });
  await delivery('bodyOnlySmall', { state: 'failed', ageMs: 30 * HOUR });
  await delivery('recent', { state: 'succeeded', ageMs: HOUR });

  await run('base', { state: 'succeeded', finishedAgoMs: 10 * DAY, snapshotChunks: 3, pages: [{ page: 1, deliveryId: ids.ackedPage! }] });
  await run('current', { state: 'paused', finishedAgoMs: null, pages: [{ page: 1, deliveryId: ids.resumablePage! }] });
  await run('oldAbandoned', { state: 'abandoned', finishedAgoMs: 10 * DAY });
  await run('oldSuperseded', { state: 'succeeded', finishedAgoMs: 9 * DAY, stale: 1, snapshotChunks: 5, pages: [{ page: 1, deliveryId: ids.oldSucceeded! }, { page: 2, deliveryId: ids.oldFailed! }] });
  await run('recentAbandoned', { state: 'abandoned', finishedAgoMs: HOUR });
  await store.db.updateTable('cohort_syncs').set({ base_run_id: ids.base!, base_at: clock - 10 * DAY, current_run_id: ids.current! }).where('id', '=', syncId).execute();

  const event = async (name: string, ageMs: number, fannedOut: number) => {
    const row = await store.db.insertInto('webhook_events').values({ event_id: `evt_${name}`, project_id: svc.project.id, type: 'cohort.member_entered', data: '{}', created_at: clock - ageMs, fanned_out: fannedOut }).returning('id').executeTakeFirstOrThrow();
    ids[name] = row.id;
  };
  await event('eventOld', 2 * DAY, 1);
  await event('eventOldWaiting', 2 * DAY, 0);
  await event('eventRecent', HOUR, 1);

  const check = async (name: string, ageMs: number) => {
    const row = await store.db
      .insertInto('alert_checks')
      .values({ alert_id: 1, checked_at: clock - ageMs, bucket_from: 0, bucket_to: 1, segment: '', value: 1, baseline: null, low: null, high: null, crossed: 0, notified: 0, note: null })
      .returning('id')
      .executeTakeFirstOrThrow();
    ids[name] = row.id;
  };
  await check('checkOld', 5 * DAY);
  await check('checkRecent', DAY);

  const batch = async (name: string, ageMs: number, finished: boolean) => {
    const row = await store.db
      .insertInto('message_batches')
      .values({ message_id: 1, delivery_id: null, user_ids: '["u"]', users: 1, runs: '{}', retry: 0, created_at: clock - ageMs, finished_at: finished ? clock - ageMs : null, outcome: finished ? 'sent' : null, status: finished ? 200 : null, reason: null })
      .returning('id')
      .executeTakeFirstOrThrow();
    ids[name] = row.id;
  };
  // The ledger: a user sent 5 days ago through batchOld. What "send once" rests on: it stays.
  await store.db
    .insertInto('message_recipients')
    .values({ message_id: 1, distinct_id: 'u-sent', state: 'sent', run_id: 1, batch_id: null, due_at: clock - 5 * DAY, attempts: 0, sends: 1, first_sent_at: clock - 5 * DAY, last_sent_at: clock - 5 * DAY, period: null, period_sends: 1, reason: null, updated_at: clock - 5 * DAY })
    .execute();
  await batch('batchOld', 5 * DAY, true);
  await batch('batchOldOpen', 5 * DAY, false);
  await batch('batchRecent', HOUR, true);

  // Events through /import: 10 and 5 days old go (before the 3-day horizon's UTC day), 1 day old stays.
  const lines = [10, 5, 1].map((days, i) => JSON.stringify({ event: 'Viewed', properties: { time: clock - days * DAY, distinct_id: `u${i}`, $insert_id: `ins-${i}` } }));
  const res = await fetch(`${svc.url}/import?strict=1`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${svc.project.secret}:`).toString('base64')}`, 'content-type': 'application/x-ndjson' }, body: lines.join('\n') });
  expect(res.status).toBe(200);
});

afterAll(async () => {
  await svc?.close();
  await receiver?.close();
});

describe(`retention on ${dialectUnderTest}`, () => {
  it('reports what it will remove, removes exactly that in small slices, and keeps what is still needed', async () => {
    const before = await svc.json('/api/v1/storage');
    expect(before.status).toBe(200);
    expect(before.body.dialect).toBe(dialectUnderTest);
    expect(before.body.next_pruning.removes).toEqual({
      // finished before the 1-day horizon and not needed by a run that can resume: oldSucceeded, oldFailed, oldCancelled, bodyOnly, bodyOnlySmall, ackedPage
      delivery_bodies: 6,
      // finished before the 2-day horizon: oldSucceeded, oldFailed, oldCancelled, ackedPage
      deliveries: 4,
      message_batches: 1,
      subscription_events: 1,
      // oldAbandoned and oldSuperseded (whose snapshot the sweep drops first)
      sync_runs: 2,
      alert_checks: 1,
      events: 2,
      event_daily_counts: 2,
      sync_snapshots: 5,
    });
    const kinds = Object.fromEntries((before.body.kinds as { kind: string; rows: number; bytes: number }[]).map((k) => [k.kind, k]));
    expect(kinds.deliveries!.rows).toBeGreaterThanOrEqual(10 + 10);
    expect(kinds.deliveries!.bytes).toBeGreaterThan(0);
    expect(before.body.database.bytes).toBeGreaterThan(0);
    const tables = Object.fromEntries((before.body.tables as { table: string; rows: number }[]).map((t) => [t.table, t.rows]));
    expect(tables.sync_snapshots).toBe(8);
    expect(tables.events).toBe(3);
    expect(before.body.retention_ms).toMatchObject({ deliveries: 2 * DAY, delivery_bodies: DAY, events: 3 * DAY });
    expect(before.body.last_pruning).toBeNull();

    const { scheduler, retention } = svc.service;
    await scheduler.runNow(SWEEP_KIND, '');
    for (let i = 0; i < 20 && (await store.db.selectFrom('sync_snapshots').select('run_id').where('run_id', '=', ids.oldSuperseded!).executeTakeFirst()); i++) await scheduler.tick();
    await scheduler.runNow(RETENTION_KIND, '');
    for (let i = 0; i < 50 && !retention.pruner.last; i++) await scheduler.tick();
    const pass = retention.pruner.last!;
    expect(pass).toBeDefined();
    expect(pass.removed).toMatchObject({ delivery_bodies: 6, deliveries: 4, message_batches: 1, subscription_events: 1, sync_runs: 2, alert_checks: 1, events: 2, event_daily_counts: 2 });
    expect(pass.slices).toBeGreaterThan(10);

    // Deliveries and their logs.
    for (const name of ['oldSucceeded', 'oldFailed', 'oldCancelled', 'ackedPage']) expect(await exists('deliveries', ids[name]!), name).toBe(false);
    for (const name of ['bodyOnly', 'bodyOnlySmall', 'finishedLately', 'recent', 'pendingOld', 'resumablePage']) expect(await exists('deliveries', ids[name]!), name).toBe(true);
    const attempts = await store.db.selectFrom('delivery_attempts').select('delivery_id').execute();
    expect(new Set(attempts.map((a) => a.delivery_id))).toEqual(new Set(['bodyOnly', 'bodyOnlySmall', 'finishedLately', 'recent', 'pendingOld', 'resumablePage'].map((n) => ids[n])));
    const bodies = await store.db.selectFrom('delivery_bodies').select('delivery_id').execute();
    expect(bodies).toEqual([]);
    const kept = await store.db.selectFrom('deliveries').select(['id', 'body', 'body_pruned_at']).where('id', 'in', [ids.bodyOnly!, ids.finishedLately!, ids.resumablePage!, ids.pendingOld!]).orderBy('id').execute();
    const byId = new Map(kept.map((k) => [k.id, k]));
    expect(byId.get(ids.bodyOnly!)).toMatchObject({ body: '', body_pruned_at: clock });
    expect(byId.get(ids.finishedLately!)!.body_pruned_at).toBeNull();
    expect(byId.get(ids.resumablePage!)).toMatchObject({ body: JSON.stringify({ name: 'resumablePage' }), body_pruned_at: null });
    expect(byId.get(ids.pendingOld!)!.body_pruned_at).toBeNull();

    // A delivery without its body says so, and cannot be sent again; its attempt log stays.
    const shown = await svc.json(`/api/v1/deliveries/${ids.bodyOnly}`);
    expect(shown.body).toMatchObject({ body: null, body_pruned_at: new Date(clock).toISOString() });
    expect(shown.body.attempts_log).toHaveLength(1);
    const retry = await svc.json(`/api/v1/deliveries/${ids.bodyOnly}/retry`, 'POST');
    expect(retry.status).toBe(409);
    expect(retry.body.error).toMatchObject({ code: 'body_pruned' });
    expect(retry.body.error.message).toMatch(/retention removed its body/);
    expect((await svc.json(`/api/v1/deliveries/${ids.finishedLately}/retry`, 'POST')).status).toBe(200);

    // Sync runs: the base, the current (resumable) run and the recent one stay; the base keeps its snapshot.
    for (const name of ['base', 'current', 'recentAbandoned']) expect(await exists('sync_runs', ids[name]!), name).toBe(true);
    for (const name of ['oldAbandoned', 'oldSuperseded']) expect(await exists('sync_runs', ids[name]!), name).toBe(false);
    const snapshots = await store.db.selectFrom('sync_snapshots').select('run_id').execute();
    expect(snapshots.map((s) => s.run_id)).toEqual([ids.base, ids.base, ids.base]);
    expect((await store.db.selectFrom('sync_pages').select('run_id').where('run_id', '=', ids.current!).execute()).length).toBe(1);

    for (const [table, gone, stay] of [
      ['webhook_events', ['eventOld'], ['eventOldWaiting', 'eventRecent']],
      ['alert_checks', ['checkOld'], ['checkRecent']],
      ['message_batches', ['batchOld'], ['batchOldOpen', 'batchRecent']],
    ] as const) {
      for (const name of gone) expect(await exists(table, ids[name]!), name).toBe(false);
      for (const name of stay) expect(await exists(table, ids[name]!), name).toBe(true);
    }

    expect(await store.db.selectFrom('message_recipients').select(['distinct_id', 'state', 'sends']).execute()).toEqual([{ distinct_id: 'u-sent', state: 'sent', sends: 1 }]);

    // Events by whole UTC days, with their daily counts.
    const events = await store.db.selectFrom('events').select('distinct_id').execute();
    expect(events.map((e) => e.distinct_id)).toEqual(['u2']);
    const counts = await store.db.selectFrom('event_daily_counts').select('distinct_id').execute();
    expect(counts.map((c) => c.distinct_id)).toEqual(['u2']);

    const after = await svc.json('/api/v1/storage');
    expect(Object.values(after.body.next_pruning.removes)).toEqual(Object.values(after.body.next_pruning.removes).map(() => 0));
    expect(after.body.last_pruning).toMatchObject({ removed: pass.removed, slices: pass.slices });
    expect(after.body.last_pruning.longest_slice_ms).toBeGreaterThan(0);

    // A second pass finds nothing more.
    await scheduler.runNow(RETENTION_KIND, '');
    for (let i = 0; i < 50 && retention.pruner.last === pass; i++) await scheduler.tick();
    expect(Object.values(retention.pruner.last!.removed).reduce((a, b) => a + b, 0)).toBe(0);
  });
});

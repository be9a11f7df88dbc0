import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { createProjectWithCli, killAllCliChildren, startCliWorker, type CliProject, type CliWorker } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { createConnectionWithCli, deliveryStates, enqueueDeliveries, localDeliveryEnv, waitUntil } from '../helpers/delivery-backlog.js';
import { startRecordingReceiver, type RecordingReceiver } from '../helpers/recording-receiver.js';

/**
 * Crash safety of delivery: a `cohortcast worker` draining a backlog is killed with SIGKILL
 * mid-stream, a new one takes over on the same database, and every delivery still arrives:
 * at least once, each resent at most once, and only those the dead worker held leases on.
 */

const DELIVERIES = 3000;
const CONCURRENCY = 32;
/** The receiver kills the first worker as this request arrives, and never answers that one. */
const KILL_AT = 600;
const LEASE_MS = 1500;

const workerEnv = {
  ...localDeliveryEnv,
  COHORTCAST_DELIVERY_LEASE_MS: String(LEASE_MS),
  COHORTCAST_DELIVERY_POLL_INTERVAL_MS: '50',
};

let db: TestDatabase;
let project: CliProject;
let receiver: RecordingReceiver;
let store: Store | undefined;
let victim: CliWorker | undefined;
let receivedAtKill = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  project = await createProjectWithCli('Delivery crash test', db.args, db.env);
  receiver = await startRecordingReceiver({
    maxDelayMs: 20,
    hold: (_id, received) => {
      if (received < KILL_AT || !victim || receivedAtKill) return false;
      // Killed while this request is in flight: the worker can never have recorded it.
      receivedAtKill = received;
      victim.kill('SIGKILL');
      return true;
    },
  });
});

afterAll(async () => {
  killAllCliChildren();
  await store?.close();
  await receiver?.close();
  await db?.cleanup();
});

describe(`delivery across a worker crash on ${dialectUnderTest}`, () => {
  it('delivers every webhook at least once after a SIGKILL, resending only what the dead worker held', { timeout: 60_000 }, async () => {
    const connection = await createConnectionWithCli(
      db,
      project.secret,
      { name: 'crash receiver', url: receiver.url, max_concurrency: CONCURRENCY, timeout_ms: 1000 },
      workerEnv,
    );
    expect(connection.max_concurrency).toBe(CONCURRENCY);

    // The backlog, written by this process; closed again before any worker runs.
    store = openStore(db.config);
    const enqueued = await enqueueDeliveries(store, db.config, project.id, connection.id, DELIVERIES, 'crash');
    await store.close();
    store = undefined;
    expect(new Set(enqueued).size).toBe(DELIVERIES);

    // First worker: killed by the receiver as request KILL_AT arrives.
    const first = await startCliWorker(db.args, { ...db.env, ...workerEnv });
    victim = first;
    const exit = await Promise.race([
      first.exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`the first worker was not killed in time: ${receiver.ids.length} received; ${first.warnings().join('\n')}`)), 30_000).unref(),
      ),
    ]);
    expect(exit.signal).toBe('SIGKILL');
    const distinctAtKill = new Set(receiver.ids.slice(0, receivedAtKill)).size;
    expect(receivedAtKill).toBeGreaterThanOrEqual(KILL_AT);
    expect(distinctAtKill).toBeLessThan(DELIVERIES);

    // What the dead worker still held: only these may have reached the receiver unrecorded.
    store = openStore(db.config);
    const held = await store.db
      .selectFrom('deliveries')
      .select('webhook_id')
      .where('connection_id', '=', connection.id)
      .where('state', '=', 'pending')
      .where('lease_owner', '=', first.name)
      .execute();
    const heldAtKill = new Set(held.map((r) => r.webhook_id));
    // A bounded number leased: up to three rounds handed to the sender (one on the wire, two
    // waiting for its free slots), and answered ones still waiting to be recorded (several
    // batches at once on PostgreSQL).
    expect(heldAtKill.size).toBeGreaterThan(0);
    expect(heldAtKill.size).toBeLessThanOrEqual(5 * CONCURRENCY);
    const heldRequest = receiver.ids[receivedAtKill - 1]!;
    expect(heldAtKill.has(heldRequest)).toBe(true);

    // Second worker: takes over the rest, and the expired leases.
    const second = await startCliWorker(db.args, { ...db.env, ...workerEnv });
    await waitUntil(async () => (await deliveryStates(store!, connection.id)).succeeded === DELIVERIES, {
      timeoutMs: 30_000,
      intervalMs: 100,
      describe: async () =>
        `states ${JSON.stringify(await deliveryStates(store!, connection.id))}, ${receiver.counts.size} distinct received; ${second.warnings().join('\n')}`,
    });
    // With the backlog drained the worker keeps running (waiting for work) until told to stop.
    await new Promise((r) => setTimeout(r, 300));
    expect.soft(second.child.exitCode ?? second.child.signalCode, 'the worker exited on its own once idle').toBeNull();
    const stopped = await second.stop();
    expect(stopped.code).toBe(0);
    expect(second.warnings()).toEqual([]);

    // Every delivery arrived, under the webhook-id it was given when enqueued.
    expect(receiver.counts.size).toBe(DELIVERIES);
    expect([...receiver.counts.keys()].sort()).toEqual([...enqueued].sort());

    // Resent: the held request surely, at most the leases the dead worker held, each once more.
    const duplicated = [...receiver.counts].filter(([, n]) => n > 1);
    const duplicates = receiver.ids.length - receiver.counts.size;
    expect(duplicates).toBeGreaterThanOrEqual(1);
    expect(duplicates).toBeLessThanOrEqual(heldAtKill.size);
    expect(duplicated.every(([, n]) => n === 2)).toBe(true);
    for (const [id] of duplicated) expect(heldAtKill.has(id), `resent ${id} was not leased by the dead worker`).toBe(true);
    expect(receiver.counts.get(heldRequest)).toBe(2);
    // One worker at a time never had more requests open at the receiver than max_concurrency.
    expect(receiver.peakInFlight).toBeLessThanOrEqual(CONCURRENCY);

    // The database agrees: all succeeded, each with one recorded attempt (the dead worker's
    // unrecorded ones leave no trace), by the two workers.
    const rows = await store.db
      .selectFrom('deliveries')
      .select(['state', 'outcome', 'attempts', 'lease_owner', 'last_status'])
      .where('connection_id', '=', connection.id)
      .execute();
    expect(rows).toHaveLength(DELIVERIES);
    expect(rows.filter((r) => r.state !== 'succeeded' || r.outcome !== 'delivered' || r.attempts !== 1 || r.lease_owner !== null || r.last_status !== 200)).toEqual([]);
    const attempts = await store.db
      .selectFrom('delivery_attempts')
      .select(['worker', 'outcome', sql<number>`count(*)`.as('n'), sql<number>`count(distinct delivery_id)`.as('deliveries')])
      .groupBy(['worker', 'outcome'])
      .execute();
    const byWorker = Object.fromEntries(attempts.map((a) => [`${a.worker === first.name ? 'first' : a.worker === second.name ? 'second' : a.worker}:${a.outcome}`, Number(a.n)]));
    expect(Object.keys(byWorker).sort()).toEqual(['first:success', 'second:success']);
    expect(byWorker['first:success']! + byWorker['second:success']!).toBe(DELIVERIES);
    // The dead worker recorded no more than it had sent before it died.
    expect(byWorker['first:success']!).toBeLessThan(receivedAtKill);
    console.log(
      `delivery crash (${dialectUnderTest}): killed at request ${receivedAtKill}, ${heldAtKill.size} leases held by the dead worker, ` +
        `${duplicates} resent; first worker recorded ${byWorker['first:success']}, second ${byWorker['second:success']}`,
    );
  });
});

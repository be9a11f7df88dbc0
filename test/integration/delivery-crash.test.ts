import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { createProjectWithCli, killAllCliChildren, startCliWorker, type CliProject, type CliWorker } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { createConnectionWithCli, deliveredBy, deliveryStates, enqueueDeliveries, localDeliveryEnv, mostOpenAtOnce, waitUntil } from '../helpers/delivery-backlog.js';
import { startRecordingReceiver, type RecordingReceiver } from '../helpers/recording-receiver.js';

/**
 * Crash safety of delivery: a `cohortcast worker` draining a backlog is killed with SIGKILL
 * mid-stream, a new one takes over on the same database, and every delivery still arrives: at
 * least once, and more often than its logged attempts only once, and only if the dead worker
 * held its lease. (An attempt that times out on a busy machine is retried and logged: the
 * assertions count arrivals against the attempt log, never against a fixed one per delivery.)
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
    expect(heldAtKill.size).toBeGreaterThan(0);
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

    // Every delivery arrived, under the webhook-id it was given when enqueued.
    expect(receiver.counts.size).toBe(DELIVERIES);
    expect([...receiver.counts.keys()].sort()).toEqual([...enqueued].sort());

    // The database agrees: all succeeded, no lease left, and each attempt logged by one of the two.
    const rows = await store.db
      .selectFrom('deliveries')
      .select(['webhook_id', 'state', 'outcome', 'attempts', 'lease_owner', 'last_status'])
      .where('connection_id', '=', connection.id)
      .execute();
    expect(rows).toHaveLength(DELIVERIES);
    expect(rows.filter((r) => r.state !== 'succeeded' || r.outcome !== 'delivered' || r.lease_owner !== null || r.last_status !== 200)).toEqual([]);
    const attempts = await store.db
      .selectFrom('delivery_attempts as a')
      .innerJoin('deliveries as d', 'd.id', 'a.delivery_id')
      .select(['d.webhook_id', 'a.worker', 'a.started_at', 'a.duration_ms'])
      .where('d.connection_id', '=', connection.id)
      .execute();
    expect(new Set(attempts.map((a) => a.worker))).toEqual(new Set([first.name, second.name]));
    const logged = new Map<string, number>();
    for (const a of attempts) logged.set(a.webhook_id, (logged.get(a.webhook_id) ?? 0) + 1);
    for (const r of rows) expect(logged.get(r.webhook_id), `attempts of ${r.webhook_id}`).toBe(r.attempts);

    // Sent more often than logged (an attempt the dead worker made and never recorded): the held
    // request surely, otherwise only deliveries the dead worker held, each once more at most.
    const unlogged = [...receiver.counts].map(([id, n]) => [id, n - (logged.get(id) ?? 0)] as const).filter(([, extra]) => extra > 0);
    expect(unlogged.every(([, extra]) => extra === 1)).toBe(true);
    for (const [id] of unlogged) expect(heldAtKill.has(id), `resent ${id} was not leased by the dead worker`).toBe(true);
    expect(unlogged.map(([id]) => id)).toContain(heldRequest);
    const duplicates = receiver.ids.length - receiver.counts.size;
    // One worker at a time never had more attempts open than max_concurrency, by its own log.
    for (const worker of [first.name, second.name]) expect(mostOpenAtOnce(attempts.filter((a) => a.worker === worker))).toBeLessThanOrEqual(CONCURRENCY);
    // The dead worker recorded no more than it had sent before it died, and held no more leases
    // than three rounds of the connection's concurrency (on the wire or waiting for a slot) plus
    // the requests it had sent and not yet recorded.
    const byWorker = { first: attempts.filter((a) => a.worker === first.name).length, second: attempts.filter((a) => a.worker === second.name).length };
    expect(byWorker.first).toBeLessThan(receivedAtKill);
    expect(heldAtKill.size).toBeLessThanOrEqual(3 * CONCURRENCY + (receivedAtKill - byWorker.first));

    // Idle, the second worker keeps running (waiting for work) and sends what comes next.
    const [later] = await enqueueDeliveries(store, db.config, project.id, connection.id, 1, 'after-idle');
    expect(await deliveredBy(store, later!)).toBe(second.name);
    const stopped = await second.stop();
    expect(stopped.code).toBe(0);
    expect(second.warnings()).toEqual([]);
    console.log(
      `delivery crash (${dialectUnderTest}): killed at request ${receivedAtKill}, ${heldAtKill.size} leases held by the dead worker, ` +
        `${duplicates} resent; first worker recorded ${byWorker.first} attempts, second ${byWorker.second}`,
    );
  });
});

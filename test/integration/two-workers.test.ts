import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { createProjectWithCli, killAllCliChildren, startCliWorker, type CliProject } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { createConnectionWithCli, deliveredBy, deliveryStates, enqueueDeliveries, localDeliveryEnv, waitUntil } from '../helpers/delivery-backlog.js';
import { startRecordingReceiver, type RecordingReceiver } from '../helpers/recording-receiver.js';

/**
 * Two `cohortcast worker` processes on one PostgreSQL database drain one backlog to one
 * destination: their claims never overlap (FOR UPDATE SKIP LOCKED), so with both alive every
 * webhook is sent exactly once, and both share the work.
 */

const DELIVERIES = 2000;
const CONCURRENCY = 16;

const workerEnv = { ...localDeliveryEnv, COHORTCAST_DELIVERY_POLL_INTERVAL_MS: '50' };

let db: TestDatabase | undefined;
let receiver: RecordingReceiver | undefined;
let store: Store | undefined;

afterAll(async () => {
  killAllCliChildren();
  await store?.close();
  await receiver?.close();
  await db?.cleanup();
});

describe.skipIf(dialectUnderTest !== 'postgres')('two workers on one PostgreSQL database', () => {
  let project: CliProject;

  beforeAll(async () => {
    db = await createTestDatabase();
    project = await createProjectWithCli('Two workers', db.args, db.env);
    receiver = await startRecordingReceiver({ maxDelayMs: 20 });
  });

  it('send each delivery of one backlog exactly once, both doing some of the work', { timeout: 60_000 }, async () => {
    const database = db!;
    const connection = await createConnectionWithCli(database, project.secret, { name: 'shared receiver', url: receiver!.url, max_concurrency: CONCURRENCY });
    expect(connection.max_concurrency).toBe(CONCURRENCY);

    // Both running (default 30 s lease) before the backlog appears, in one commit.
    const workers = await Promise.all([0, 1].map(() => startCliWorker(database.args, { ...database.env, ...workerEnv })));
    const [a, b] = workers as [(typeof workers)[0], (typeof workers)[0]];
    expect(a.name).not.toBe(b.name);
    store = openStore(database.config);
    const enqueued = await enqueueDeliveries(store, database.config, project.id, connection.id, DELIVERIES, 'two-workers');

    await waitUntil(async () => (await deliveryStates(store!, connection.id)).succeeded === DELIVERIES, {
      timeoutMs: 30_000,
      intervalMs: 100,
      describe: async () =>
        `states ${JSON.stringify(await deliveryStates(store!, connection.id))}, ${receiver!.counts.size} distinct received; ${[...a.warnings(), ...b.warnings()].join('\n')}`,
    });
    // Exactly once each, under the webhook-ids given at enqueue.
    expect(receiver!.ids).toHaveLength(DELIVERIES);
    expect([...receiver!.counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect([...receiver!.counts.keys()].sort()).toEqual([...enqueued].sort());
    // max_concurrency holds per worker process: together they may have at most twice as many in flight.
    expect(receiver!.peakInFlight).toBeLessThanOrEqual(CONCURRENCY * workers.length);

    const rows = await store.db
      .selectFrom('deliveries')
      .select(['state', 'outcome', 'attempts', 'lease_owner'])
      .where('connection_id', '=', connection.id)
      .execute();
    expect(rows).toHaveLength(DELIVERIES);
    expect(rows.filter((r) => r.state !== 'succeeded' || r.outcome !== 'delivered' || r.attempts !== 1 || r.lease_owner !== null)).toEqual([]);

    // One attempt per delivery, recorded by whichever worker sent it; both sent some.
    const perWorker = await store.db
      .selectFrom('delivery_attempts')
      .select(['worker', sql<number>`count(*)`.as('n'), sql<number>`count(distinct delivery_id)`.as('deliveries')])
      .groupBy('worker')
      .execute();
    expect(perWorker.map((r) => r.worker).sort()).toEqual([a.name, b.name].sort());
    for (const r of perWorker) {
      expect(Number(r.n)).toBeGreaterThan(0);
      expect(Number(r.deliveries)).toBe(Number(r.n));
    }
    expect(perWorker.reduce((sum, r) => sum + Number(r.n), 0)).toBe(DELIVERIES);

    // Idle, a worker keeps running (waiting for work) until told to stop: with A stopped, B, idle
    // since the backlog drained, sends what comes next.
    expect((await a.stop()).code).toBe(0);
    const [later] = await enqueueDeliveries(store, database.config, project.id, connection.id, 1, 'after-idle');
    expect(await deliveredBy(store, later!)).toBe(b.name);
    expect((await b.stop()).code).toBe(0);
    expect([...a.warnings(), ...b.warnings()]).toEqual([]);
    console.log(
      `two workers: ${perWorker.map((r) => `${r.worker === a.name ? 'A' : 'B'} sent ${r.n}`).join(', ')}; peak ${receiver!.peakInFlight} in flight at the receiver`,
    );
  });
});

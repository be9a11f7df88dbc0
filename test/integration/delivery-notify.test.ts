import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { createProjectWithCli, killAllCliChildren, startCliWorker, type CliProject, type CliWorker } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { createConnectionWithCli, deliveredBy, enqueueDeliveries, localDeliveryEnv, waitUntil } from '../helpers/delivery-backlog.js';
import { startRecordingReceiver, type RecordingReceiver } from '../helpers/recording-receiver.js';

/**
 * On PostgreSQL an enqueue notifies (LISTEN/NOTIFY) the processes that send: a delivery enqueued in
 * this test's process is sent by a `cohortcast worker` in another, although that worker polls only
 * once a minute. Nothing but the notification can explain it arriving within the 20 s allowed.
 */

const POLL_MS = '60000';

let db: TestDatabase | undefined;
let receiver: RecordingReceiver | undefined;
let store: Store | undefined;
let worker: CliWorker | undefined;

afterAll(async () => {
  killAllCliChildren();
  await store?.close();
  await receiver?.close();
  await db?.cleanup();
});

/** The backend pids of connections whose last statement was a LISTEN for deliveries. */
async function listeners(store: Store): Promise<number[]> {
  const { rows } = await sql<{ pid: number }>`select pid from pg_stat_activity where datname = current_database() and query = 'listen cohortcast_deliveries'`.execute(store.db);
  return rows.map((r) => r.pid);
}

describe.skipIf(dialectUnderTest !== 'postgres')('deliveries enqueued by another process on PostgreSQL', () => {
  let project: CliProject;
  let connectionId: number;

  beforeAll(async () => {
    db = await createTestDatabase();
    project = await createProjectWithCli('Notify', db.args, db.env);
    receiver = await startRecordingReceiver();
    connectionId = (await createConnectionWithCli(db, project.secret, { name: 'notified', url: receiver.url })).id;
    store = openStore(db.config);
    worker = await startCliWorker(db.args, { ...db.env, ...localDeliveryEnv, COHORTCAST_DELIVERY_POLL_INTERVAL_MS: POLL_MS, COHORTCAST_DELIVERY_LISTEN_RETRY_MS: '100' });
    // Its first look for work is done once it listens: from then on only a notification wakes it.
    await waitUntil(async () => (await listeners(store!)).length === 1, { timeoutMs: 10_000, describe: () => 'the worker never listened' });
  });

  it('are sent at once, not at the next poll', { timeout: 30_000 }, async () => {
    const [webhookId] = await enqueueDeliveries(store!, db!.config, project.id, connectionId, 1, 'notify');
    expect(await deliveredBy(store!, webhookId!)).toBe(worker!.name);
    expect(receiver!.ids).toEqual([webhookId]);
  });

  it('still are once the listening connection was cut and made again', { timeout: 30_000 }, async () => {
    const [before] = await listeners(store!);
    await sql`select pg_terminate_backend(${before})`.execute(store!.db);
    await waitUntil(async () => (await listeners(store!)).some((pid) => pid !== before), { timeoutMs: 10_000, describe: () => 'the worker never listened again' });
    const [webhookId] = await enqueueDeliveries(store!, db!.config, project.id, connectionId, 1, 'notify-again');
    expect(await deliveredBy(store!, webhookId!)).toBe(worker!.name);
    expect(receiver!.ids.at(-1)).toBe(webhookId);
  });
});

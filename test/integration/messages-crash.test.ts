import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../packages/receiver/src/index.js';
import { openStore, type Store } from '../../src/store/database.js';
import { cliApi, createProjectWithCli, killAllCliChildren, runCli, runCliOk, startCliServer, type CliProject } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { localDeliveryEnv } from '../helpers/delivery-backlog.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Webhook messages made on the command line and sent by a `cohortcast serve` that is killed with
 * SIGKILL mid-message. The receiver refuses one batch with a 500. After a restart every user has
 * been acknowledged with a 200 exactly as the ledger says: none lost, none marked sent without a
 * 200, and a batch that was on the wire at the kill went again with its webhook-id.
 */
const USERS = 1000;
const env = {
  ...localDeliveryEnv,
  COHORTCAST_MEMBERSHIP_INTERVAL_MS: '20',
  COHORTCAST_SCHEDULER_POLL_INTERVAL_MS: '50',
  COHORTCAST_SUBSCRIPTIONS_CACHE_TTL_MS: '50',
  COHORTCAST_DELIVERY_POLL_INTERVAL_MS: '20',
  COHORTCAST_DELIVERY_LEASE_MS: '1500',
  COHORTCAST_DELIVERY_TIMEOUT_MS: '1000',
  COHORTCAST_DELIVERY_MAX_TIMEOUT_MS: '1000',
  // Few batches out at once, so the kill falls between many committed endings.
  COHORTCAST_MESSAGE_BATCHES_IN_FLIGHT: '2',
  COHORTCAST_MESSAGE_BATCH_INTERVAL_MS: '20',
  COHORTCAST_MESSAGE_RETRY_BASE_MS: '50',
  COHORTCAST_MESSAGE_RETRY_MAX_MS: '200',
};

let db: TestDatabase;
let store: Store;
let project: CliProject;
let receiver: Receiver;
let dir: string;
/** Each request's answer, by its index in receiver.received. */
const statuses: number[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  project = await createProjectWithCli('Message crash test', db.args, db.env);
  store = openStore(db.config);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-messages-'));
  receiver = await startReceiver(() => {
    // The third request is refused; the rest are acknowledged, slowly enough to be killed among.
    const status = statuses.length === 2 ? 500 : 200;
    statuses.push(status);
    return { status, body: status === 200 ? 'ok' : 'busy', delayMs: 40 };
  });
});

afterAll(async () => {
  killAllCliChildren();
  await receiver?.close();
  await store?.close();
  await db?.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

const api = (base: string, p: string, method = 'GET', body?: unknown) => cliApi(base, project.secret, p, method, body);

async function engage(base: string, updates: Record<string, unknown>[]): Promise<void> {
  for (let i = 0; i < updates.length; i += 50) {
    const data = Buffer.from(JSON.stringify(updates.slice(i, i + 50).map((u) => ({ $token: project.token, ...u })))).toString('base64');
    const res = await fetch(`${base}/engage`, { method: 'POST', body: `data=${data}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await res.text()).toBe('1');
  }
}

describe(`webhook messages across a SIGKILL on ${dialectUnderTest}`, () => {
  it('made on the command line; after a restart every user is acknowledged once, as the ledger says', { timeout: 90_000 }, async () => {
    const first = await startCliServer(db.args, { ...db.env, ...env });
    const ids = Array.from({ length: USERS }, (_, i) => `u${String(i).padStart(4, '0')}`);
    await engage(first.url, ids.map(($distinct_id, i) => ({ $distinct_id, $set: { plan: 'pro', n: i } })));
    const cohort = (await api(first.url, '/api/v1/cohorts', 'POST', { name: 'Pros', definition: { property: 'plan', op: 'equals', value: 'pro' } })).body.id as number;
    const connection = (await api(first.url, '/api/v1/connections', 'POST', { name: 'receiver', url: receiver.url, timeout_ms: 1000 })).body.id as number;

    // Bad input on the command line says what to fix.
    const bad = await runCli(['message', 'create', '--file', write('bad.json', { name: 'x', cohort_id: cohort, connection_id: connection, schedule: { type: 'scheduled', at: '9am' } }), ...db.args], db.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('schedule.at: expected a time of day as "HH:MM"');
    const created = JSON.parse(await runCliOk(['message', 'create', '--file', write('asap.json', { name: 'Welcome', cohort_id: cohort, connection_id: connection, schedule: { type: 'asap' } }), '--json', ...db.args], db.env));
    expect(created).toMatchObject({ name: 'Welcome', cohort_id: cohort, connection_id: connection, schedule: { type: 'asap' }, enabled: true });

    // The running service picks the message up, and is killed mid-way.
    await waitFor('some batches acknowledged', () => (statuses.filter((s) => s === 200).length >= 5 ? true : undefined), 30_000, 5);
    first.kill('SIGKILL');
    await first.exited;
    const sentBefore = await store.db.selectFrom('message_recipients').select('distinct_id').where('state', '=', 'sent').execute();
    expect(sentBefore.length).toBeLessThan(USERS);

    const second = await startCliServer(db.args, { ...db.env, ...env });
    try {
      await waitFor('every user sent', async () => {
        const n = await store.db.selectFrom('message_recipients').select((e) => e.fn.countAll().as('n')).where('state', '=', 'sent').executeTakeFirstOrThrow();
        return Number(n.n) === USERS ? true : undefined;
      }, 60_000);
      // What the receiver acknowledged, and the webhook-ids each user came with.
      const acked = new Set<string>();
      const webhookIds = new Map<string, Set<string>>();
      receiver.received.forEach((r, i) => {
        for (const u of parseMessage(r.body)) {
          if (statuses[i] === 200) acked.add(u.$distinct_id);
          webhookIds.set(u.$distinct_id, (webhookIds.get(u.$distinct_id) ?? new Set()).add(String(r.headers['webhook-id'])));
        }
      });
      expect(acked.size).toBe(USERS);
      // The refused batch's 50 users went again in a new batch (a new webhook-id), unless the kill came before
      // its 500 was recorded (then its delivery went again as it was). Every other user came in one batch
      // only, however often that batch was sent.
      const refused = parseMessage(receiver.received[2]!.body).map((u) => u.$distinct_id);
      expect(refused).toHaveLength(50);
      const failedBatches = await store.db.selectFrom('message_batches').select('user_ids').where('outcome', '=', 'failed').execute();
      expect(failedBatches.length).toBeLessThanOrEqual(1);
      const recorded = failedBatches.length === 1;
      if (recorded) expect(JSON.parse(failedBatches[0]!.user_ids)).toEqual(refused);
      for (const [id, hooks] of webhookIds) expect(hooks.size, id).toBe(recorded && refused.includes(id) ? 2 : 1);
      const ledger = await store.db.selectFrom('message_recipients').select(['distinct_id', 'sends', 'attempts']).execute();
      expect(ledger.every((r) => r.sends === 1 && r.attempts === 0)).toBe(true);
      const run = (await api(second.url, `/api/v1/messages/${created.id}/runs`)).body.results[0];
      expect(run).toMatchObject({ kind: 'live', users: USERS, sent: USERS, failed: recorded ? 50 : 0, outstanding: 0 });
      const listed = await runCliOk(['message', 'list', ...db.args], db.env);
      expect(listed).toBe(`${created.id}\tWelcome\tcohort ${cohort}\tconnection ${connection}\tASAP, as users come to match\n`);
    } finally {
      await second.stop();
    }
  });
});

describe.runIf(dialectUnderTest === 'postgres')('a webhook message in two processes on one PostgreSQL', () => {
  it('each user is targeted once and sent in one batch, whichever process cuts and sends it', { timeout: 90_000 }, async () => {
    const [a, b] = await Promise.all([startCliServer(db.args, { ...db.env, ...env, COHORTCAST_MESSAGE_BATCHES_IN_FLIGHT: '4' }), startCliServer(db.args, { ...db.env, ...env, COHORTCAST_MESSAGE_BATCHES_IN_FLIGHT: '4' })]);
    try {
      const ids = Array.from({ length: USERS }, (_, i) => `t${String(i).padStart(4, '0')}`);
      const cohort = (await api(a.url, '/api/v1/cohorts', 'POST', { name: 'Twins', definition: { property: 'twin', op: 'equals', value: true } })).body.id as number;
      const path = '/twins';
      const connection = (await api(a.url, '/api/v1/connections', 'POST', { name: 'twins', url: receiver.origin + path, timeout_ms: 1000 })).body.id as number;
      const m = (await api(b.url, '/api/v1/messages', 'POST', { name: 'Twins', cohort_id: cohort, connection_id: connection, schedule: { type: 'asap' } })).body.id as number;
      await waitFor('the live watch', async () => ((await store.db.selectFrom('messages').select('seeded').where('id', '=', m).executeTakeFirst())?.seeded === 1 ? true : undefined), 20_000);
      // Half the users come to match through each process.
      await Promise.all([
        engage(a.url, ids.filter((_, i) => i % 2 === 0).map(($distinct_id) => ({ $distinct_id, $set: { twin: true } }))),
        engage(b.url, ids.filter((_, i) => i % 2 === 1).map(($distinct_id) => ({ $distinct_id, $set: { twin: true } }))),
      ]);
      const ours = () => receiver.received.filter((r) => r.path === path);
      await waitFor('every user sent', async () => {
        const n = await store.db.selectFrom('message_recipients').select((e) => e.fn.countAll().as('n')).where('message_id', '=', m).where('state', '=', 'sent').executeTakeFirstOrThrow();
        return Number(n.n) === USERS ? true : undefined;
      }, 60_000);
      const hooks = new Map<string, Set<string>>();
      for (const r of ours()) for (const u of parseMessage(r.body)) hooks.set(u.$distinct_id, (hooks.get(u.$distinct_id) ?? new Set()).add(String(r.headers['webhook-id'])));
      expect(hooks.size).toBe(USERS);
      expect([...hooks.values()].filter((h) => h.size !== 1)).toEqual([]);
      const run = (await api(a.url, `/api/v1/messages/${m}/runs`)).body.results[0];
      expect(run).toMatchObject({ kind: 'live', users: USERS, sent: USERS, outstanding: 0 });
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

function write(name: string, value: unknown): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(value));
  return file;
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { cliApi, createProjectWithCli, killAllCliChildren, startCliServer, type CliProject } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { localDeliveryEnv } from '../helpers/delivery-backlog.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A `cohortcast serve` killed with SIGKILL while it evaluates touched profiles against three
 * watched cohorts. The next process on the same database finishes the work: every member change
 * reaches the receiver, and each change carries one event_id however often it arrived.
 */
const PROFILES = 400;
const env = {
  ...localDeliveryEnv,
  // Small evaluation batches, so the kill falls between many committed ones.
  COHORTCAST_MEMBERSHIP_BATCH: '5',
  COHORTCAST_MEMBERSHIP_INTERVAL_MS: '20',
  COHORTCAST_FANOUT_INTERVAL_MS: '20',
  COHORTCAST_SCHEDULER_POLL_INTERVAL_MS: '50',
  COHORTCAST_DELIVERY_POLL_INTERVAL_MS: '20',
  COHORTCAST_DELIVERY_LEASE_MS: '1500',
  COHORTCAST_DELIVERY_TIMEOUT_MS: '1000',
  COHORTCAST_DELIVERY_MAX_TIMEOUT_MS: '1000',
  COHORTCAST_RETRY_SCHEDULE_STANDARD_MS: '0,50,100,200,400',
};

type Envelope = { event_id: string; event_type: string; data: { distinct_id: string; cohort: { id: number } } };

let db: TestDatabase;
let store: Store;
let project: CliProject;
let receiver: Receiver;

beforeAll(async () => {
  db = await createTestDatabase();
  project = await createProjectWithCli('Membership crash test', db.args, db.env);
  store = openStore(db.config);
  receiver = await startReceiver(() => ({ status: 200, body: '{}' }));
});

afterAll(async () => {
  killAllCliChildren();
  await receiver?.close();
  await store?.close();
  await db?.cleanup();
});

const api = (base: string, path: string, method = 'GET', body?: unknown) => cliApi(base, project.secret, path, method, body);

async function engage(base: string, updates: Record<string, unknown>[]): Promise<void> {
  for (let i = 0; i < updates.length; i += 50) {
    const data = Buffer.from(JSON.stringify(updates.slice(i, i + 50).map((u) => ({ $token: project.token, ...u })))).toString('base64');
    const res = await fetch(`${base}/engage`, { method: 'POST', body: `data=${data}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(await res.text()).toBe('1');
  }
}

const envelopes = () => receiver.received.map((r) => JSON.parse(r.body) as Envelope);
const dirtyLeft = async () => Number((await store.db.selectFrom('dirty_profiles').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

describe(`live membership across a SIGKILL on ${dialectUnderTest}`, () => {
  it('delivers every change after the restart, each with one event_id', { timeout: 90_000 }, async () => {
    const first = await startCliServer(db.args, { ...db.env, ...env });
    const definitions = [
      { property: 'plan', op: 'equals', value: 'pro' },
      { property: 'score', op: 'greater_than', value: 10 },
      { and: [{ property: 'plan', op: 'set' }, { property: 'country', op: 'equals', value: 'NZ' }] },
    ];
    const cohorts: number[] = [];
    for (const [i, definition] of definitions.entries()) cohorts.push((await api(first.url, '/api/v1/cohorts', 'POST', { name: `c${i}`, definition })).body.id);
    const connection = await api(first.url, '/api/v1/connections', 'POST', { name: 'receiver', url: receiver.url, timeout_ms: 1000 });
    const sub = await api(first.url, '/api/v1/subscriptions', 'POST', { name: 'members', event_types: ['cohort.member_entered', 'cohort.member_exited'], cohort_ids: cohorts, channels: [{ type: 'webhook', connection_id: connection.body.id }] });
    expect(sub.status).toBe(201);
    // A probe proves the watches are live (a profile changed before that would join the baseline silently).
    await engage(first.url, [{ $distinct_id: 'probe', $set: { plan: 'pro' } }]);
    await waitFor('the probe entering', () => envelopes().find((e) => e.data.distinct_id === 'probe'), 20_000);

    // Everyone enters all three cohorts; a quarter then leaves the first (a later update of the same profiles).
    const ids = Array.from({ length: PROFILES }, (_, i) => `u${String(i).padStart(3, '0')}`);
    await engage(first.url, ids.map(($distinct_id) => ({ $distinct_id, $set: { plan: 'pro', score: 50, country: 'NZ' } })));
    const leavers = ids.filter((_, i) => i % 4 === 0);
    await engage(first.url, leavers.map(($distinct_id) => ({ $distinct_id, $set: { plan: 'free' } })));
    await waitFor('the evaluation to be under way', async () => {
      const n = await dirtyLeft();
      return n > 0 && n < PROFILES ? n : undefined;
    }, 20_000, 5);
    first.kill('SIGKILL');
    await first.exited;
    // The kill fell mid-evaluation: some users evaluated (members recorded), some still marked.
    expect(await dirtyLeft()).toBeGreaterThan(0);
    const evaluated = await store.db.selectFrom('cohort_members').select('distinct_id').where('distinct_id', '!=', 'probe').execute();
    expect(evaluated.length).toBeGreaterThan(0);

    const second = await startCliServer(db.args, { ...db.env, ...env });
    try {
      const key = (e: Envelope) => `${e.event_type} ${e.data.cohort.id} ${e.data.distinct_id}`;
      const expected = new Set<string>();
      for (const id of ids) for (const c of cohorts) expected.add(`cohort.member_entered ${c} ${id}`);
      // A leaver evaluated after both updates never entered the first cohort; one evaluated between them entered and exited.
      const byKey = await waitFor('every change at the receiver', () => {
        const seen = new Map<string, Set<string>>();
        for (const e of envelopes()) {
          if (e.data.distinct_id === 'probe') continue;
          const k = key(e);
          seen.set(k, (seen.get(k) ?? new Set()).add(e.event_id));
        }
        const missing = [...expected].filter((k) => !k.startsWith(`cohort.member_entered ${cohorts[0]} `) && !seen.has(k));
        const stillIn = ids.filter((id) => !leavers.includes(id)).filter((id) => !seen.has(`cohort.member_entered ${cohorts[0]} ${id}`));
        const leaversDone = leavers.every((id) => seen.has(`cohort.member_entered ${cohorts[0]} ${id}`) === seen.has(`cohort.member_exited ${cohorts[0]} ${id}`));
        return missing.length === 0 && stillIn.length === 0 && leaversDone ? seen : undefined;
      }, 60_000);
      for (const [k, eventIds] of byKey) expect(eventIds.size, k).toBe(1);
      // What the receiver got is what the database recorded: the members of each cohort now.
      const members = await store.db.selectFrom('cohort_members').select(['cohort_id', 'distinct_id']).where('distinct_id', '!=', 'probe').execute();
      const count = (c: number) => members.filter((m) => m.cohort_id === c).length;
      expect([count(cohorts[0]!), count(cohorts[1]!), count(cohorts[2]!)]).toEqual([PROFILES - leavers.length, PROFILES, PROFILES]);
      expect(await dirtyLeft()).toBe(0);
      // Each event was stored once: as many distinct event ids as changes.
      const stored = await store.db.selectFrom('webhook_events').select('event_id').where('type', 'in', ['cohort.member_entered', 'cohort.member_exited']).execute();
      expect(stored.length).toBe(byKey.size + 1);
    } finally {
      await second.stop();
    }
  });
});

describe.runIf(dialectUnderTest === 'postgres')('live membership in two processes on one PostgreSQL', () => {
  it('shares the evaluation: every change emitted once, by one of them', { timeout: 90_000 }, async () => {
    const quiet = { ...env, COHORTCAST_MEMBERSHIP_BATCH: '10', COHORTCAST_SUBSCRIPTIONS_CACHE_TTL_MS: '50' };
    const [a, b] = await Promise.all([startCliServer(db.args, { ...db.env, ...quiet }), startCliServer(db.args, { ...db.env, ...quiet })]);
    try {
      const cohort = (await api(a.url, '/api/v1/cohorts', 'POST', { name: 'Shared', definition: { property: 'tier', op: 'equals', value: 'gold' } })).body.id as number;
      const connection = await api(a.url, '/api/v1/connections', 'POST', { name: 'receiver', url: receiver.url, timeout_ms: 1000 });
      await api(a.url, '/api/v1/subscriptions', 'POST', { name: 'shared', event_types: ['cohort.member_entered'], cohort_ids: [cohort], channels: [{ type: 'webhook', connection_id: connection.body.id }] });
      // Both processes see the watch (their indexes refresh every 50 ms here): a probe through each enters.
      for (const [i, server] of [a, b].entries()) {
        let attempt = 0;
        await waitFor(`a probe through process ${i}`, async () => {
          const id = `shared-probe-${i}-${attempt++}`;
          await engage(server.url, [{ $distinct_id: id, $set: { tier: 'gold' } }]);
          return waitFor('its event', () => envelopes().find((e) => e.data.distinct_id === id), 1000).catch(() => undefined);
        }, 20_000, 0);
      }
      const made = async (url: string) => {
        const text = await (await fetch(`${url}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith('cohortcast_membership_changes_total{change="entered",source="evaluation"}'));
        return line ? Number(line.split(' ').pop()) : 0;
      };
      const madeBefore = (await made(a.url)) + (await made(b.url));
      const ids = Array.from({ length: PROFILES }, (_, i) => `s${String(i).padStart(3, '0')}`);
      // Each process ingests half: each is woken by its own marks, and both take from one queue.
      await Promise.all([
        engage(a.url, ids.filter((_, i) => i % 2 === 0).map(($distinct_id) => ({ $distinct_id, $set: { tier: 'gold' } }))),
        engage(b.url, ids.filter((_, i) => i % 2 === 1).map(($distinct_id) => ({ $distinct_id, $set: { tier: 'gold' } }))),
      ]);
      const ours = () => envelopes().filter((e) => e.data.cohort.id === cohort && !e.data.distinct_id.startsWith('shared-probe'));
      await waitFor('every user entering', () => (new Set(ours().map((e) => e.data.distinct_id)).size === PROFILES ? true : undefined), 60_000);
      const eventIds = new Map<string, Set<string>>();
      for (const e of ours()) eventIds.set(e.data.distinct_id, (eventIds.get(e.data.distinct_id) ?? new Set()).add(e.event_id));
      expect([...eventIds.values()].filter((set) => set.size !== 1)).toEqual([]);
      // The two counts of changes made add up to the changes: none was made by both.
      expect((await made(a.url)) + (await made(b.url)) - madeBefore).toBe(PROFILES);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

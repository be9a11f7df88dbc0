import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { claimDeliveries } from '../../src/store/leases.js';
import { migrateTo, migrateToLatest } from '../../src/store/migrate.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';

/**
 * Upgrading a database that has deliveries, e-mails waiting in the old notifications table and
 * cohort syncs with their next run on cohort_syncs: nothing is lost, and each moves to its new
 * place (the outbox's 'email' channel, the schedules table).
 */
let db: TestDatabase;
let store: Store;
const now = Date.now();

beforeAll(async () => {
  db = await createTestDatabase();
  store = openStore(db.config);
  await migrateTo(store, '005_sync_pages_apart');
  const raw = store.db as any;
  await raw.insertInto('projects').values({ id: 1, name: 'p', token: 't', secret_hash: 'x', created_at: now }).execute();
  await raw
    .insertInto('connections')
    .values({ id: 1, project_id: 1, name: 'c', url: 'https://example.com/hook', headers: '{}', signing_secret: 'sealed', timeout_ms: 1000, max_concurrency: 4, created_at: now, updated_at: now })
    .execute();
  const delivery = (id: number, state: string, body: string, apart: number) => ({
    id,
    project_id: 1,
    connection_id: 1,
    webhook_id: `msg_${id}`,
    owner_kind: 'test',
    owner_id: String(id),
    policy: 'standard',
    content_type: 'application/json',
    body,
    body_apart: apart,
    headers: '{}',
    state,
    attempts: state === 'pending' ? 0 : 1,
    round_attempts: 0,
    next_attempt_at: now,
    lease_owner: state === 'pending' ? 'old-worker' : null,
    lease_expires_at: state === 'pending' ? now + 60_000 : null,
    created_at: now,
    updated_at: now,
  });
  await raw.insertInto('deliveries').values([delivery(1, 'succeeded', '{"a":1}', 0), delivery(2, 'pending', '', 1)]).execute();
  await raw.insertInto('delivery_bodies').values({ delivery_id: 2, body: 'x'.repeat(9000) }).execute();
  // Rows written with their ids: PostgreSQL's sequence must move past them, as it would have.
  if (dialectUnderTest === 'postgres') await sql`select setval(pg_get_serial_sequence('deliveries', 'id'), 100)`.execute(store.db);
  await raw.insertInto('delivery_attempts').values({ delivery_id: 1, attempt: 1, worker: 'old-worker', started_at: now, duration_ms: 3, status: 200, outcome: 'success' }).execute();
  const mail = (id: number, state: string) => ({
    id,
    project_id: 1,
    recipients: JSON.stringify(['ops@example.com', 'pm@example.com']),
    subject: `subject ${id}`,
    body: `text ${id}`,
    state,
    attempts: state === 'sent' ? 1 : 2,
    next_attempt_at: now - 1000,
    last_error: state === 'sent' ? null : 'mailbox busy',
    created_at: now - 5000,
    sent_at: state === 'sent' ? now - 4000 : null,
  });
  await raw.insertInto('notifications').values([mail(1, 'sent'), mail(2, 'pending')]).execute();
  await raw.insertInto('cohorts').values({ id: 1, project_id: 1, name: 'all', description: '', definition: '{"property":"plan","op":"set"}', created_at: now, updated_at: now }).execute();
  const sync = (id: number, interval: number | null, next: number | null, base: number | null) => ({
    id,
    project_id: 1,
    cohort_id: 1,
    connection_id: 1,
    properties_to_export: '[]',
    owner_emails: '[]',
    interval_ms: interval,
    state: 'active',
    next_run_at: next,
    base_run_id: base,
    base_at: base === null ? null : now,
    created_at: now,
    updated_at: now,
  });
  await raw.insertInto('cohort_syncs').values([sync(1, 1_800_000, now + 60_000, 11), sync(2, null, null, null)]).execute();
  const run = (id: number, state: string) => ({ id, sync_id: 1, session_id: `s${id}`, kind: 'full', state, total_pages: 1, pages_acked: 1, members: 0, members_added: 0, members_removed: 0, started_at: now });
  // Run 10 was superseded by run 11 (the base): its data is the sweep's to drop.
  await raw.insertInto('sync_runs').values([run(10, 'succeeded'), run(11, 'succeeded')]).execute();
  await migrateToLatest(store);
});

afterAll(async () => {
  await store?.close();
  await db?.cleanup();
});

describe(`upgrading to channels and schedules on ${dialectUnderTest}`, () => {
  it('keeps every delivery, its body and its attempts, as webhooks with no lease token', async () => {
    const rows = await store.db.selectFrom('deliveries').selectAll().where('connection_id', '=', 1).orderBy('id').execute();
    expect(rows.map((r) => [r.id, r.channel, r.state, r.lease_owner, r.lease_token])).toEqual([
      [1, 'webhook', 'succeeded', null, null],
      [2, 'webhook', 'pending', 'old-worker', null],
    ]);
    const attempts = await store.db.selectFrom('delivery_attempts').select(['delivery_id', 'status']).execute();
    expect(attempts).toEqual([{ delivery_id: 1, status: 200 }]);
    // The lease the old worker held still expires and the delivery is claimed again, body and all.
    const [claimed] = await claimDeliveries(store, { connectionId: 1 }, 10, 'new-worker', now + 61_000, 1000);
    expect(claimed).toMatchObject({ id: 2, channel: 'webhook', body: 'x'.repeat(9000) });
    expect(claimed!.lease_token).toMatch(/^new-worker#/);
  });

  it('still enforces the foreign keys of the rebuilt table', async () => {
    await expect(
      store.db.insertInto('delivery_attempts').values({ delivery_id: 999, attempt: 1, worker: 'w', started_at: now, duration_ms: 1, status: 200, response_headers: null, response_body: null, error: null, outcome: 'success', reason: null }).execute(),
    ).rejects.toThrow(/foreign key/i);
  });

  it('moves the e-mails into the outbox as deliveries of the e-mail channel, waiting ones still due', async () => {
    const mails = await store.db.selectFrom('deliveries').selectAll().where('channel', '=', 'email').orderBy('owner_id').execute();
    expect(mails.map((m) => [m.owner_id, m.state, m.outcome, m.attempts, m.connection_id, m.policy, m.body, m.last_error])).toEqual([
      ['1', 'succeeded', 'delivered', 1, null, 'email', 'text 1', null],
      ['2', 'pending', null, 2, null, 'email', 'text 2', 'mailbox busy'],
    ]);
    const headers = mails.map((m) => (typeof m.headers === 'string' ? JSON.parse(m.headers) : m.headers));
    expect(headers[1]).toEqual({ to: 'ops@example.com, pm@example.com', subject: 'subject 2' });
    const [due] = await claimDeliveries(store, { channel: 'email' }, 10, 'new-worker', now, 1000);
    expect(due).toMatchObject({ owner_id: '2', channel: 'email', body: 'text 2' });
    const { rows } = await sql`select 1 from information_schema.tables where table_name = 'notifications'`.execute(store.db).catch(() => ({ rows: [] }));
    expect(rows).toEqual([]);
  });

  it('moves each sync’s next run to its schedule, and marks superseded runs for the sweep', async () => {
    const schedules = await store.db.selectFrom('schedules').select(['kind', 'key', 'every_ms', 'next_run_at']).orderBy('key').execute();
    expect(schedules).toEqual([
      { kind: 'cohort-sync', key: '1', every_ms: 1_800_000, next_run_at: now + 60_000 },
      { kind: 'cohort-sync', key: '2', every_ms: null, next_run_at: null },
    ]);
    const runs = await store.db.selectFrom('sync_runs').select(['id', 'stale']).orderBy('id').execute();
    expect(runs).toEqual([
      { id: 10, stale: 1 },
      { id: 11, stale: 0 },
    ]);
  });
});

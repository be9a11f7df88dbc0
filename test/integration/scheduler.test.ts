import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scheduler, type ScheduledRun } from '../../src/scheduling/scheduler.js';
import { calendar, every, once } from '../../src/scheduling/timing.js';
import { openStore, type Store } from '../../src/store/database.js';
import { claimSchedules } from '../../src/store/leases.js';
import { migrateToLatest } from '../../src/store/migrate.js';
import { putSchedule } from '../../src/store/schedules-repo.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The scheduler on the database under test, as several processes run it: two schedulers on two
 * connections (two pools on PostgreSQL) share one schedules table; each due run is run by one of
 * them, once. Failures are retried after errorRetryMs, a run whose process died is taken over when
 * its lease lapses, a run found too late is skipped.
 */
let db: TestDatabase;
const stores: Store[] = [];
const log = pino({ level: 'silent' });
const config = { pollIntervalMs: 60_000, leaseMs: 300, errorRetryMs: 5_000 };

beforeAll(async () => {
  db = await createTestDatabase();
  for (let i = 0; i < 2; i++) stores.push(openStore(db.config));
  await migrateToLatest(stores[0]!);
});

afterAll(async () => {
  for (const s of stores) await s.close();
  await db?.cleanup();
});

/** Two schedulers (as two processes) with `handler` for `kind`; stopped at the end of the test. */
function pair(kind: string, handler: (worker: string, job: ScheduledRun) => Promise<void>) {
  const schedulers = stores.map((store, i) => {
    const s = new Scheduler({ store, config, log, worker: `worker-${i}` });
    s.register(kind, { run: (job) => handler(`worker-${i}`, job) });
    return s;
  });
  return { schedulers, stop: () => Promise.all(schedulers.map((s) => s.stop())) };
}

describe(`the scheduler on ${dialectUnderTest}`, () => {
  it('runs each due run once, whichever of two processes finds it', async () => {
    const now = Date.now();
    for (let k = 0; k < 20; k++) await putSchedule(stores[0]!.db, { kind: 'once-each', key: String(k), timing: every(3_600_000), nextRunAt: now - k }, now);
    const ran: [string, string][] = [];
    const { schedulers, stop } = pair('once-each', async (worker, job) => {
      ran.push([worker, job.key]);
      await new Promise((r) => setTimeout(r, 5));
    });
    // Both look at the same moment, several times over.
    await Promise.all(schedulers.flatMap((s) => [s.tick(), s.tick(), s.tick()]));
    await stop();
    expect(ran.map(([, key]) => key).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 20 }, (_, k) => String(k)));
    const rows = await stores[0]!.db.selectFrom('schedules').select(['key', 'runs', 'next_run_at', 'lease_token']).where('kind', '=', 'once-each').execute();
    // Each is planned one interval after its own due time, on its own grid.
    for (const r of rows) expect(r).toEqual({ key: r.key, runs: 1, next_run_at: now - Number(r.key) + 3_600_000, lease_token: null });
  });

  it('tries a failed run again after errorRetryMs, saying why it failed', async () => {
    const now = Date.now();
    await putSchedule(stores[0]!.db, { kind: 'failing', key: '', timing: every(3_600_000), nextRunAt: now }, now);
    const { schedulers, stop } = pair('failing', async () => {
      throw new Error('the receiver database is down');
    });
    const ran = new Promise<{ error: string | null }>((resolve) => schedulers[0]!.events.once('ran', resolve));
    await schedulers[0]!.tick();
    expect(await ran).toMatchObject({ error: 'the receiver database is down' });
    await stop();
    const row = await stores[0]!.db.selectFrom('schedules').selectAll().where('kind', '=', 'failing').executeTakeFirstOrThrow();
    expect(row).toMatchObject({ runs: 0, last_error: 'the receiver database is down', lease_token: null });
    expect(row.next_run_at! - row.last_finished_at!).toBe(config.errorRetryMs);
  });

  it('takes over a run whose process died once its lease lapses', async () => {
    const now = Date.now();
    await putSchedule(stores[0]!.db, { kind: 'orphan', key: '', timing: once, nextRunAt: now }, now);
    // A process claims the run and dies before completing it.
    const [dead] = await claimSchedules(stores[1]!, ['orphan'], 1, 'dead-worker', Date.now(), config.leaseMs);
    expect(dead!.lease_owner).toBe('dead-worker');
    const ran: string[] = [];
    const { schedulers, stop } = pair('orphan', async (worker) => void ran.push(worker));
    await schedulers[0]!.tick();
    expect(ran).toEqual([]); // still leased
    await waitFor('the lease to lapse and the run to be taken over', async () => {
      await schedulers[0]!.tick();
      return ran.length > 0 ? true : undefined;
    });
    await stop();
    expect(ran).toEqual(['worker-0']);
    const row = await stores[0]!.db.selectFrom('schedules').selectAll().where('kind', '=', 'orphan').executeTakeFirstOrThrow();
    // A one-off: done, not scheduled again.
    expect(row).toMatchObject({ runs: 1, next_run_at: null, lease_owner: null });
  });

  it('skips a run found later than its max lateness, and moves on to the next occurrence', async () => {
    const now = Date.now();
    const hourAgo = now - 3_600_000;
    await putSchedule(stores[0]!.db, { kind: 'late', key: '', timing: calendar('0 * * * *', 'UTC', 60_000), nextRunAt: hourAgo }, now);
    const ran: string[] = [];
    const { schedulers, stop } = pair('late', async (worker) => void ran.push(worker));
    const event = new Promise<{ skipped: boolean }>((resolve) => schedulers[0]!.events.once('ran', resolve));
    await schedulers[0]!.tick();
    expect(await event).toMatchObject({ skipped: true });
    await stop();
    expect(ran).toEqual([]);
    const row = await stores[0]!.db.selectFrom('schedules').selectAll().where('kind', '=', 'late').executeTakeFirstOrThrow();
    expect(row).toMatchObject({ runs: 0, missed: 1 });
    expect(row.next_run_at! > now && new Date(row.next_run_at!).getUTCMinutes() === 0).toBe(true);
  });
});

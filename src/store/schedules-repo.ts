import type { Kysely, Transaction } from 'kysely';
import type { ScheduleRow } from './leases.js';
import type { Database } from './schema.js';

/**
 * Schedules outside a lease: creating, changing and removing them, and asking for a run now.
 * Claiming and completing runs is in leases.ts.
 */

type Db = Kysely<Database> | Transaction<Database>;

export interface ScheduleTiming {
  every_ms: number | null;
  cron: string | null;
  timezone: string | null;
  max_lateness_ms: number | null;
}

/**
 * Creates the schedule (kind, key) or changes its timing. `nextRunAt` is its next run when it is
 * created; an existing schedule keeps its own unless `replaceNext` (or it has none).
 */
export async function putSchedule(db: Db, s: { kind: string; key: string; timing: ScheduleTiming; nextRunAt: number | null; replaceNext?: boolean }, now: number): Promise<void> {
  await db
    .insertInto('schedules')
    .values({ kind: s.kind, key: s.key, ...s.timing, next_run_at: s.nextRunAt, runs: 0, missed: 0, created_at: now, updated_at: now })
    .onConflict((oc) =>
      oc.columns(['kind', 'key']).doUpdateSet((eb) => ({
        ...s.timing,
        next_run_at: s.replaceNext ? s.nextRunAt : eb.fn.coalesce('schedules.next_run_at', eb.val(s.nextRunAt)),
        updated_at: now,
      })),
    )
    .execute();
}

/**
 * Due now (unless it is due earlier already). While it runs, the planned time moves to now, so the
 * run in progress, completing, sees it was asked for again and keeps it. Answers whether the
 * schedule exists.
 */
export async function scheduleNow(db: Db, kind: string, key: string, now: number): Promise<boolean> {
  const res = await db
    .updateTable('schedules')
    .set((eb) => ({
      next_run_at: eb
        .case()
        .when(eb.and([eb('next_run_at', '<', now), eb('lease_token', 'is', null)]))
        .then(eb.ref('next_run_at'))
        .else(now)
        .end(),
      updated_at: now,
    }))
    .where('kind', '=', kind)
    .where('key', '=', key)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function removeSchedule(db: Db, kind: string, key: string): Promise<void> {
  await db.deleteFrom('schedules').where('kind', '=', kind).where('key', '=', key).execute();
}

export async function findSchedule(db: Db, kind: string, key: string): Promise<ScheduleRow | undefined> {
  return db.selectFrom('schedules').selectAll().where('kind', '=', kind).where('key', '=', key).executeTakeFirst();
}

import type { Transaction } from 'kysely';
import type { Dialect } from '../store/database.js';
import type { Database } from '../store/schema.js';
import { insertPages, planFullPages, readSnapshotChunk, shiftPages, writeSnapshot } from '../store/sync-pages-repo.js';
import type { RawBuilder } from 'kysely';
import { cutDiff, IdStream, PageCutter } from './sync-plan.js';
import type { SyncAction } from './wire.js';

/** Where a diff's remove pages are numbered while they are cut (then moved behind the add pages). */
const REMOVES_CUT_AT = 1_000_000_000;

export interface RunPlan {
  members: number;
  total_pages: number;
  members_added: number;
  members_removed: number;
}

/**
 * Fixes a run's membership and pages when it starts, inside its transaction: the snapshot (the
 * cohort's members as sorted id chunks, written by the database), then the pages: a full run's are
 * its chunks; a diff merges the new snapshot with the base a chunk at a time (sync-plan.ts), so a
 * cohort of any size never sits in memory.
 */
export async function planRun(
  trx: Transaction<Database>,
  dialect: Dialect,
  run: { id: number; projectId: number; baseRunId: number | null; condition: RawBuilder<boolean>; pageSize: number },
): Promise<RunPlan> {
  const members = await writeSnapshot(trx, dialect, run.id, run.projectId, run.condition, run.pageSize);
  if (run.baseRunId === null) {
    const pages = await planFullPages(trx, dialect, run.id, run.projectId, members);
    return { members, total_pages: pages, members_added: members, members_removed: 0 };
  }
  const snapshot = (runId: number) => new IdStream((chunk) => readSnapshotChunk(trx, runId, chunk));
  const cutter = (action: SyncAction, firstPage: number) => new PageCutter(run.id, action, firstPage, run.pageSize, (pages) => insertPages(trx, pages));
  // Remove pages follow the add pages, whose number is known only at the end: cut them far out,
  // then move them into place.
  const adds = cutter('add_members', 1);
  const removes = cutter('remove_members', REMOVES_CUT_AT);
  await cutDiff(snapshot(run.id), snapshot(run.baseRunId), adds, removes);
  await shiftPages(trx, run.id, REMOVES_CUT_AT, adds.pages + 1 - REMOVES_CUT_AT);
  return { members, total_pages: adds.pages + removes.pages, members_added: adds.members, members_removed: removes.members };
}

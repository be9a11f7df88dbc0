import crypto from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Logger } from 'pino';
import { evaluationProblem } from '../cohorts/cohort-admin.js';
import { isPermanentFailure } from '../store/failures.js';
import type { SyncConfig } from '../config.js';
import type { Outbox } from '../delivery/outbox.js';
import type { ScheduledRun, ScheduleHandler } from '../scheduling/scheduler.js';
import { compileDefinition } from '../store/cohort-sql.js';
import { abandonRun, findRun, insertRun, lockSync, resumeRun, setRunPlanned, type SyncRow } from '../store/cohort-sync-repo.js';
import { cohortDefinitions, cohortLabel } from '../store/cohorts-repo.js';
import type { Store } from '../store/database.js';
import type { Database } from '../store/schema.js';
import { pauseSync, type SyncEvents } from './notices.js';
import type { PageQueue } from './pages.js';
import { planRun } from './planner.js';

type Trx = Transaction<Database>;

/**
 * A sync's scheduled run (the handler of its schedule, kind 'cohort-sync', key its id). In one
 * transaction that locks the sync: resumes its unfinished run (failed or paused: same session,
 * from its first unacknowledged page) while that is younger than the snapshot lifetime, or
 * starts a new one, full without a live base snapshot, a diff against it otherwise. A sync that
 * is paused or done, or has a run going, is left as it is.
 */
export class SyncRunner implements ScheduleHandler {
  constructor(private readonly deps: { store: Store; outbox: Outbox; pages: PageQueue; config: SyncConfig; log: Logger; events?: SyncEvents; wake(): void }) {}

  async run(job: ScheduledRun): Promise<void> {
    const syncId = Number(job.key);
    let started: boolean;
    try {
      started = await this.deps.store.db.transaction().execute((trx) => this.#runDue(trx, syncId, job.now));
    } catch (err) {
      // Trying again would fail the same way (the cohort cannot be evaluated on this data): the
      // sync pauses with the reason, said once, instead of failing at every retry.
      if (!isPermanentFailure(err)) throw err;
      const reason = `the cohort could not be evaluated: ${(err as Error).message}`;
      await this.deps.store.db.transaction().execute((trx) => pauseSync(trx, this.deps.outbox, syncId, reason, Date.now(), this.deps.events));
      this.deps.log.warn({ sync: syncId, reason }, 'a cohort sync paused: its run cannot start');
      return;
    }
    if (started) this.deps.wake();
  }

  async #runDue(trx: Trx, syncId: number, now: number): Promise<boolean> {
    const sync = await lockSync(trx, syncId, now);
    if (!sync || sync.state !== 'active') return false;
    const current = sync.current_run_id === null ? undefined : await findRun(trx, sync.current_run_id);
    if (current?.state === 'running') return false; // still going: the next interval finds it done
    if (current && current.started_at > now - this.deps.config.snapshotTtlMs) {
      await resumeRun(trx, current.id);
      await this.deps.pages.queue(trx, current.id, now);
      return true;
    }
    if (current) await abandonRun(trx, current.id, now);
    return this.#startRun(trx, sync, now);
  }

  async #startRun(trx: Trx, sync: SyncRow, now: number): Promise<boolean> {
    const { store, config } = this.deps;
    const cohorts = await cohortDefinitions(trx, sync.project_id);
    const definition = cohorts.get(sync.cohort_id);
    const cohort = await cohortLabel(trx, sync.cohort_id);
    if (!definition || !cohort) {
      await pauseSync(trx, this.deps.outbox, sync.id, `cohort ${sync.cohort_id} no longer exists`, now, this.deps.events);
      return false;
    }
    const problem = evaluationProblem(sync.cohort_id, cohorts);
    if (problem) {
      await pauseSync(trx, this.deps.outbox, sync.id, problem, now, this.deps.events);
      this.deps.log.warn({ sync: sync.id, reason: problem }, 'a cohort sync paused: its run cannot start');
      return false;
    }
    const baseRunId = sync.base_run_id !== null && sync.base_at !== null && sync.base_at > now - config.snapshotTtlMs ? sync.base_run_id : null;
    const runId = await insertRun(trx, {
      sync_id: sync.id,
      session_id: crypto.randomUUID(),
      kind: baseRunId === null ? 'full' : 'diff',
      state: 'running',
      base_run_id: baseRunId,
      total_pages: 0,
      pages_acked: 0,
      members: 0,
      members_added: 0,
      members_removed: 0,
      started_at: now,
      cohort_name: cohort.name,
      cohort_description: cohort.description,
    });
    const condition = compileDefinition(definition, { dialect: store.dialect, projectId: sync.project_id, now, cohorts });
    const plan = await planRun(trx, store.dialect, { id: runId, projectId: sync.project_id, baseRunId, condition, pageSize: config.pageSize });
    await setRunPlanned(trx, { id: runId, syncId: sync.id }, plan, now);
    await this.deps.pages.queue(trx, runId, now);
    return true;
  }
}

import type { SyncConfig } from '../config.js';
import { ActionableError } from '../errors.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { every, once } from '../scheduling/timing.js';
import { deleteSync, findRun, findSync, insertSync, listRuns, listSyncs, setSyncState, SYNC_SCHEDULE_KIND, type RunRow, type SyncView } from '../store/cohort-sync-repo.js';
import { getCohort } from '../store/cohorts-repo.js';
import { findConnection } from '../store/connections-repo.js';
import type { Store } from '../store/database.js';
import { putSchedule } from '../store/schedules-repo.js';

export interface SyncInput {
  cohort_id: number;
  connection_id: number;
  properties_to_export?: string[];
  interval_minutes?: number;
  one_time?: boolean;
  /** Told by e-mail when the sync pauses. */
  owner_emails?: string[];
}

// Deliberately loose: the SMTP server is the judge; this catches what is plainly not an address.
const EMAIL = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+\.[^\s@<>(),;:"]+$/;

/**
 * What the API (and a person) does with cohort syncs: create one (its schedule with it, the first
 * run at once), read them and their runs, run now, resume, delete.
 */
export class SyncAdmin {
  constructor(private readonly deps: { store: Store; scheduler: Scheduler; config: SyncConfig }) {}

  async create(projectId: number, input: SyncInput): Promise<SyncView> {
    const { store, config } = this.deps;
    const owners = input.owner_emails ?? [];
    const badEmail = owners.find((e) => typeof e !== 'string' || !EMAIL.test(e));
    if (badEmail !== undefined) throw new ActionableError(400, 'invalid_sync', `owner_emails: ${JSON.stringify(badEmail)} is not an e-mail address`);
    if (!(await getCohort(store, projectId, input.cohort_id))) throw new ActionableError(400, 'invalid_sync', `cohort_id: no cohort ${input.cohort_id} in this project`);
    if (!(await findConnection(store, projectId, input.connection_id))) throw new ActionableError(400, 'invalid_sync', `connection_id: no connection ${input.connection_id} in this project`);
    const exported = input.properties_to_export ?? [];
    const bad = exported.find((k) => typeof k !== 'string' || k === '' || k.length > 255 || /["\\]/.test(k));
    if (bad !== undefined) throw new ActionableError(400, 'invalid_sync', `properties_to_export: ${JSON.stringify(bad)} is not a property name (1-255 characters, no quotes or backslashes)`);
    const now = Date.now();
    const intervalMs = input.one_time ? null : (input.interval_minutes ?? config.defaultIntervalMinutes) * 60_000;
    const row = await store.db.transaction().execute(async (trx) => {
      const sync = await insertSync(trx, {
        project_id: projectId,
        cohort_id: input.cohort_id,
        connection_id: input.connection_id,
        properties_to_export: JSON.stringify([...new Set(exported)]),
        owner_emails: JSON.stringify([...new Set(owners)]),
        interval_ms: intervalMs,
        state: 'active',
        state_reason: null,
        created_at: now,
        updated_at: now,
      });
      // The first run starts at once; later ones every interval (a one-time sync: none).
      await putSchedule(trx, { kind: SYNC_SCHEDULE_KIND, key: String(sync.id), timing: intervalMs === null ? once : every(intervalMs), nextRunAt: now }, now);
      return sync;
    });
    void this.deps.scheduler.tick();
    return { ...row, next_run_at: now };
  }

  async get(projectId: number, id: number): Promise<SyncView> {
    const sync = await findSync(this.deps.store.db, projectId, id);
    if (!sync) throw new ActionableError(404, 'not_found', `no cohort sync ${id} in this project`);
    return sync;
  }

  list(projectId: number, after: number | undefined, limit: number): Promise<SyncView[]> {
    return listSyncs(this.deps.store.db, projectId, after, limit);
  }

  async runs(projectId: number, id: number, before: number | undefined, limit: number): Promise<RunRow[]> {
    await this.get(projectId, id);
    return listRuns(this.deps.store.db, id, before, limit);
  }

  /** Runs now: 409 while a run is going or the sync is paused (resume it instead). */
  async runNow(projectId: number, id: number): Promise<void> {
    const sync = await this.get(projectId, id);
    if (sync.state === 'paused') throw new ActionableError(409, 'paused', `cohort sync ${id} is paused (${sync.state_reason}); POST …/resume starts it again`);
    if (sync.current_run_id !== null && (await findRun(this.deps.store.db, sync.current_run_id))?.state === 'running') {
      throw new ActionableError(409, 'run_in_progress', `cohort sync ${id} has a run going; wait for it to end`);
    }
    await this.#dueNow(id);
  }

  /** Starts a paused sync again: its paused run goes on from its first unacknowledged page. */
  async resume(projectId: number, id: number): Promise<void> {
    const sync = await this.get(projectId, id);
    if (sync.state !== 'paused') throw new ActionableError(409, 'not_paused', `cohort sync ${id} is not paused`);
    await this.#dueNow(id);
  }

  /** Active again (a one-time sync that is done runs once more) and due now; answers once this process has run it. */
  async #dueNow(id: number): Promise<void> {
    await setSyncState(this.deps.store.db, id, 'active', null, Date.now());
    await this.deps.scheduler.runNow(SYNC_SCHEDULE_KIND, String(id));
  }

  async remove(projectId: number, id: number): Promise<void> {
    await this.get(projectId, id);
    await this.deps.store.db.transaction().execute((trx) => deleteSync(trx, id, Date.now()));
  }
}

import crypto from 'node:crypto';
import { sql, type Selectable, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { SyncConfig } from '../config.js';
import type { Dispatcher } from '../delivery/dispatcher.js';
import { enqueue } from '../delivery/outbox.js';
import type { DeliveryOutcome, DeliveryOwner, OwnerRegistry } from '../delivery/owners.js';
import { ActionableError } from '../errors.js';
import { PeriodicTask } from '../periodic.js';
import { compileDefinition } from '../store/cohort-sql.js';
import { insertNotification } from '../store/notifications-repo.js';
import { cohortDefinitions, getCohort } from '../store/cohorts-repo.js';
import { findConnection } from '../store/connections-repo.js';
import { insertPages, pageMembersJson, planFullPages, readSnapshotChunk, shiftPages, stopQueuedPages, sweepStaleRun, writeSnapshot, type SyncAction } from '../store/cohort-sync-repo.js';
import { requeue } from '../store/outbox-repo.js';
import { cutDiff, IdStream, PageCutter } from './sync-plan.js';
import type { Store } from '../store/database.js';
import { readJson, type CohortSyncsTable, type Database, type SyncRunsTable } from '../store/schema.js';

const OWNER_KIND = 'cohort-sync';
/** Where a diff's remove pages are numbered while they are cut (see #startRun). */
const REMOVES_CUT_AT = 1_000_000_000;
/** Runs whose envelope fields a process keeps at hand. */
const RUN_CONTEXTS = 64;
type Trx = Transaction<Database>;
/** What every page of a run is built with, none of which changes during the run. */
interface RunContext {
  run: Pick<Selectable<SyncRunsTable>, 'sync_id' | 'session_id' | 'total_pages' | 'cohort_name' | 'cohort_description'>;
  sync: Pick<Selectable<CohortSyncsTable>, 'project_id' | 'cohort_id' | 'connection_id' | 'properties_to_export'>;
  exported: string[];
}

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
 * Cohort syncs, as Mixpanel's Custom Webhook sync does them (seed 002): the first run sends the
 * whole cohort (`members`), later runs `add_members` and `remove_members` against the snapshot of
 * the last successful run (both calls even when empty); a snapshot serves for snapshotTtlMs, then
 * the sync is full again. A run starts by writing its membership (sorted ids, in chunks) and
 * cutting its pages' ids (a diff merges two snapshots); pages are built and queued as the outbox
 * takes them, pagesInFlight at a time. A run that fails (retries used up) or is paused
 * (400/401/403/404) is resumed, not restarted, by the next run or `resume`: same session, from its
 * first unacknowledged page, a page already sent going again as the same delivery.
 */
export class CohortSyncs implements DeliveryOwner {
  readonly #scheduler: PeriodicTask;
  readonly #runs = new Map<number, RunContext>();

  constructor(
    private readonly deps: { store: Store; owners: OwnerRegistry; dispatcher: Dispatcher; config: SyncConfig; log: Logger },
  ) {
    deps.owners.register(OWNER_KIND, this);
    this.#scheduler = new PeriodicTask(deps.config.schedulerIntervalMs, () => this.#tick(), deps.log, 'looking for due cohort syncs');
  }

  /** Starts the scheduler: due syncs are looked for every schedulerIntervalMs. */
  start(): void {
    this.#scheduler.start();
  }

  stop(): Promise<void> {
    return this.#scheduler.stop();
  }

  /** Starts or resumes every due sync; one tick at a time per process. */
  tick(): Promise<void> {
    return this.#scheduler.run();
  }

  async #tick(): Promise<void> {
    const now = Date.now();
    const due = await this.deps.store.db.selectFrom('cohort_syncs').select('id').where('state', '=', 'active').where('next_run_at', '<=', now).orderBy('next_run_at').limit(100).execute();
    let started = false;
    for (const { id } of due) {
      try {
        started = (await this.deps.store.db.transaction().execute((trx) => this.#runDue(trx, id, now))) || started;
      } catch (err) {
        this.deps.log.error({ err, sync: id }, 'starting a cohort sync run failed; trying again at the next tick');
      }
    }
    if (started) this.deps.dispatcher.wake(true);
    // Snapshots and pages no run will read again are dropped here, off the path of any run.
    await sweepStaleRun(this.deps.store.db);
  }

  /** Takes the due sync (one process wins), then resumes its unfinished run or starts a new one. */
  async #runDue(trx: Trx, syncId: number, now: number): Promise<boolean> {
    const sync = await trx
      .updateTable('cohort_syncs')
      .set((eb) => ({ next_run_at: eb.case().when('interval_ms', 'is', null).then(null).else(eb('interval_ms', '+', now)).end(), updated_at: now }))
      .where('id', '=', syncId)
      .where('state', '=', 'active')
      .where('next_run_at', '<=', now)
      .returningAll()
      .executeTakeFirst();
    if (!sync) return false;
    const current = sync.current_run_id === null ? undefined : await trx.selectFrom('sync_runs').selectAll().where('id', '=', sync.current_run_id).executeTakeFirstOrThrow();
    if (current?.state === 'running') return false; // still going: the next interval finds it done
    if (current && current.started_at > now - this.deps.config.snapshotTtlMs) {
      await trx.updateTable('sync_runs').set({ state: 'running', error: null }).where('id', '=', current.id).execute();
      await this.#queuePages(trx, current.id, now);
      return true;
    }
    if (current) await trx.updateTable('sync_runs').set({ state: 'abandoned', finished_at: now }).where('id', '=', current.id).execute();
    await this.#startRun(trx, sync, now);
    return true;
  }

  async #startRun(trx: Trx, sync: Selectable<CohortSyncsTable>, now: number): Promise<void> {
    const { store, config } = this.deps;
    const cohorts = await cohortDefinitions(trx, sync.project_id);
    const definition = cohorts.get(sync.cohort_id);
    const cohort = await trx.selectFrom('cohorts').select(['name', 'description']).where('id', '=', sync.cohort_id).executeTakeFirst();
    if (!definition || !cohort) {
      await this.#pause(trx, sync.id, `cohort ${sync.cohort_id} no longer exists`, now);
      return;
    }
    const baseRunId = sync.base_run_id !== null && sync.base_at !== null && sync.base_at > now - config.snapshotTtlMs ? sync.base_run_id : null;
    const run = await trx
      .insertInto('sync_runs')
      .values({
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
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const condition = compileDefinition(definition, { dialect: store.dialect, projectId: sync.project_id, now, cohorts });
    const members = await writeSnapshot(trx, store.dialect, run.id, sync.project_id, condition, config.pageSize);
    const snapshot = (runId: number) => new IdStream((chunk) => readSnapshotChunk(trx, runId, chunk));
    const cutter = (action: SyncAction, firstPage: number) => new PageCutter(run.id, action, firstPage, config.pageSize, (pages) => insertPages(trx, pages));
    let totals: { total_pages: number; members_added: number; members_removed: number };
    if (baseRunId === null) {
      const pages = await planFullPages(trx, store.dialect, run.id, sync.project_id, members);
      totals = { total_pages: pages, members_added: members, members_removed: 0 };
    } else {
      // Remove pages follow the add pages, whose number is known only at the end: cut them far
      // out, then move them into place.
      const adds = cutter('add_members', 1);
      const removes = cutter('remove_members', REMOVES_CUT_AT);
      await cutDiff(snapshot(run.id), snapshot(baseRunId), adds, removes);
      await shiftPages(trx, run.id, REMOVES_CUT_AT, adds.pages + 1 - REMOVES_CUT_AT);
      totals = { total_pages: adds.pages + removes.pages, members_added: adds.members, members_removed: removes.members };
    }
    await trx.updateTable('sync_runs').set({ ...totals, members }).where('id', '=', run.id).execute();
    await trx.updateTable('cohort_syncs').set({ current_run_id: run.id, updated_at: now }).where('id', '=', sync.id).execute();
    await this.#queuePages(trx, run.id, now);
  }

  /**
   * Puts the run's next pages in the outbox, in page order, until pagesInFlight are queued and
   * unacknowledged. A page that was sent before (its run failed or paused) goes again as the same
   * delivery: the same body and webhook-id. A page never sent is built now, from its fixed ids and
   * the profiles as they are. Callers hold the run's row lock (see finished), so two endings of
   * the same run never queue the same page.
   */
  async #queuePages(trx: Trx, runId: number, now: number): Promise<void> {
    const out = await trx.selectFrom('sync_pages').select((eb) => eb.fn.countAll<number>().as('n')).where('run_id', '=', runId).where('state', '=', 'queued').executeTakeFirstOrThrow();
    const { pagesInFlight } = this.deps.config;
    const room = pagesInFlight - Number(out.n);
    // Refilled by halves, not a page per acknowledgement: batches cost fewer statements per page.
    if (room <= 0 || (Number(out.n) > 0 && room < pagesInFlight / 2)) return;
    const pages = await trx.selectFrom('sync_pages').selectAll().where('run_id', '=', runId).where('state', 'in', ['pending', 'stopped']).orderBy('page').limit(room).execute();
    if (pages.length === 0) return;
    const again = pages.filter((p) => p.delivery_id !== null);
    if (again.length > 0) {
      await trx
        .updateTable('deliveries')
        .set(requeue(now))
        .where(
          'id',
          'in',
          again.map((p) => p.delivery_id!),
        )
        .where('state', '!=', 'succeeded')
        .execute();
    }
    const fresh = pages.filter((p) => p.delivery_id === null);
    const queued = again.map((p) => ({ page: p.page, deliveryId: p.delivery_id! }));
    if (fresh.length > 0) {
      const { run, sync, exported } = await this.#runContext(trx, runId);
      const bodies: string[] = [];
      for (const page of fresh) {
        const members = await pageMembersJson(trx, this.deps.store.dialect, sync.project_id, page, exported);
        // The envelope by JSON.stringify, the members (built by the database) spliced in as they are.
        const head = JSON.stringify({
          action: page.action,
          parameters: {
            mixpanel_project_id: String(sync.project_id),
            mixpanel_cohort_id: String(sync.cohort_id),
            mixpanel_cohort_name: run.cohort_name ?? '',
            mixpanel_cohort_description: run.cohort_description ?? '',
            mixpanel_session_id: run.session_id,
            page_info: { total_pages: run.total_pages, page_count: page.page },
          },
        });
        bodies.push(`${head.slice(0, -2)},"members":${members}}}`);
      }
      const deliveries = await enqueue(
        trx,
        fresh.map((page, i) => ({
          projectId: sync.project_id,
          connectionId: sync.connection_id,
          ownerKind: OWNER_KIND,
          ownerId: `${runId}:${page.page}`,
          policy: 'mixpanel-cohort-sync' as const,
          contentType: 'application/json',
          body: bodies[i]!,
        })),
        now,
      );
      fresh.forEach((page, i) => queued.push({ page: page.page, deliveryId: deliveries[i]!.id }));
    }
    await trx
      .updateTable('sync_pages')
      .set({ state: 'queued', delivery_id: sql<number>`case page ${sql.join(queued.map((q) => sql`when ${q.page} then cast(${q.deliveryId} as bigint)`), sql` `)} end` })
      .where('run_id', '=', runId)
      .where(
        'page',
        'in',
        queued.map((q) => q.page),
      )
      .execute();
  }

  /** What every page of a run is built with; fixed for the run, so read once per run and process. */
  async #runContext(trx: Trx, runId: number) {
    const known = this.#runs.get(runId);
    if (known) return known;
    const run = await trx.selectFrom('sync_runs').select(['sync_id', 'session_id', 'total_pages', 'cohort_name', 'cohort_description']).where('id', '=', runId).executeTakeFirstOrThrow();
    const sync = await trx.selectFrom('cohort_syncs').select(['project_id', 'cohort_id', 'connection_id', 'properties_to_export']).where('id', '=', run.sync_id).executeTakeFirstOrThrow();
    const context: RunContext = { run, sync, exported: readJson<string[]>(sync.properties_to_export) };
    if (this.#runs.size >= RUN_CONTEXTS) this.#runs.delete(this.#runs.keys().next().value!);
    this.#runs.set(runId, context);
    return context;
  }

  /** Pauses the sync and, in the same transaction, queues the e-mail to its owners. */
  async #pause(trx: Trx, syncId: number, reason: string, now: number): Promise<void> {
    const sync = await trx
      .updateTable('cohort_syncs')
      .set({ state: 'paused', state_reason: reason, updated_at: now })
      .where('id', '=', syncId)
      .returning(['project_id', 'cohort_id', 'connection_id', 'owner_emails'])
      .executeTakeFirstOrThrow();
    const recipients = readJson<string[]>(sync.owner_emails);
    if (recipients.length === 0) return;
    const cohort = await trx.selectFrom('cohorts').select('name').where('id', '=', sync.cohort_id).executeTakeFirst();
    const name = cohort ? `"${cohort.name}"` : `${sync.cohort_id}`;
    await insertNotification(
      trx,
      {
        projectId: sync.project_id,
        recipients,
        subject: `cohortcast: the sync of cohort ${name} is paused`,
        body: [
          `The sync ${syncId} of cohort ${name} to connection ${sync.connection_id} (project ${sync.project_id}) is paused:`,
          '',
          `  ${reason}`,
          '',
          'Nothing more is sent until it is resumed. Fix the receiver, then:',
          `  POST /api/v1/cohort-syncs/${syncId}/resume`,
          'The paused run goes on from its first unacknowledged page.',
        ].join('\n'),
      },
      now,
    );
  }

  /**
   * A page's delivery ended (inside the transaction that records it): acknowledge it and queue
   * more, finish the run, or fail or pause it. The run's row is updated before anything more is
   * queued, which locks it on PostgreSQL: endings of one run's pages take turns. A failed or paused
   * run always keeps its failing page stopped, so resuming it always has a page to send.
   */
  async finished(trx: Trx, outcome: DeliveryOutcome): Promise<void> {
    const [runId, pageNo] = outcome.delivery.owner_id.split(':').map(Number) as [number, number];
    const now = Date.now();
    const pageRow = trx.updateTable('sync_pages').where('run_id', '=', runId).where('page', '=', pageNo);
    if (outcome.outcome === 'delivered') {
      // A stopped page counts too: its delivery was retried by hand.
      const page = await pageRow.set({ state: 'acked' }).where('state', 'in', ['queued', 'stopped']).executeTakeFirst();
      if (Number(page.numUpdatedRows) === 0) return; // its run was abandoned, or this ending was recorded already
      const run = await trx.updateTable('sync_runs').set((eb) => ({ pages_acked: eb('pages_acked', '+', 1) })).where('id', '=', runId).returningAll().executeTakeFirstOrThrow();
      // A page of a run that failed or paused meanwhile still counts; nothing more is sent until it resumes.
      if (run.state !== 'running') return;
      if (run.pages_acked < run.total_pages) return this.#queuePages(trx, runId, now);
      await trx.updateTable('sync_runs').set({ state: 'succeeded', finished_at: now }).where('id', '=', runId).execute();
      const sync = await trx.selectFrom('cohort_syncs').select(['interval_ms']).where('id', '=', run.sync_id).executeTakeFirstOrThrow();
      await trx
        .updateTable('cohort_syncs')
        .set({ base_run_id: runId, base_at: run.started_at, current_run_id: null, updated_at: now, ...(sync.interval_ms === null ? { state: 'done' as const } : {}) })
        .where('id', '=', run.sync_id)
        .execute();
      return;
    }
    const reason = outcome.reason ?? `HTTP ${outcome.status ?? '(no answer)'}`;
    // The page goes again, as the same delivery, when the run is resumed.
    const page = await pageRow.set({ state: 'stopped' }).where('state', '=', 'queued').executeTakeFirst();
    if (Number(page.numUpdatedRows) === 0) return;
    const state = outcome.outcome === 'rejected' ? 'paused' : 'failed';
    const run = await trx.updateTable('sync_runs').set({ state, error: reason }).where('id', '=', runId).where('state', '=', 'running').returning(['sync_id']).executeTakeFirst();
    if (!run) return;
    // Pages queued behind it wait for the resume instead of going out to a failing receiver.
    await stopQueuedPages(trx, runId, now);
    if (state === 'paused') await this.#pause(trx, run.sync_id, `the receiver refused page ${pageNo}: ${reason}`, now);
  }

  // ----- administration (the API's operations) -----

  async create(projectId: number, input: SyncInput) {
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
    const row = await store.db
      .insertInto('cohort_syncs')
      .values({
        project_id: projectId,
        cohort_id: input.cohort_id,
        connection_id: input.connection_id,
        properties_to_export: JSON.stringify([...new Set(exported)]),
        owner_emails: JSON.stringify([...new Set(owners)]),
        interval_ms: input.one_time ? null : (input.interval_minutes ?? config.defaultIntervalMinutes) * 60_000,
        state: 'active',
        state_reason: null,
        // The first run starts at once.
        next_run_at: now,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    void this.tick();
    return row;
  }

  async get(projectId: number, id: number) {
    const sync = await this.deps.store.db.selectFrom('cohort_syncs').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst();
    if (!sync) throw new ActionableError(404, 'not_found', `no cohort sync ${id} in this project`);
    return sync;
  }

  list(projectId: number, after: number | undefined, limit: number) {
    let q = this.deps.store.db.selectFrom('cohort_syncs').selectAll().where('project_id', '=', projectId);
    if (after !== undefined) q = q.where('id', '>', after);
    return q.orderBy('id').limit(limit).execute();
  }

  async runs(projectId: number, id: number, before: number | undefined, limit: number) {
    await this.get(projectId, id);
    let q = this.deps.store.db.selectFrom('sync_runs').selectAll().where('sync_id', '=', id);
    if (before !== undefined) q = q.where('id', '<', before);
    return q.orderBy('id', 'desc').limit(limit).execute();
  }

  /** Runs now: 409 while a run is going or the sync is paused (resume it instead). */
  async runNow(projectId: number, id: number): Promise<void> {
    const sync = await this.get(projectId, id);
    if (sync.state === 'paused') throw new ActionableError(409, 'paused', `cohort sync ${id} is paused (${sync.state_reason}); POST …/resume starts it again`);
    if (sync.current_run_id !== null) {
      const run = await this.deps.store.db.selectFrom('sync_runs').select('state').where('id', '=', sync.current_run_id).executeTakeFirst();
      if (run?.state === 'running') throw new ActionableError(409, 'run_in_progress', `cohort sync ${id} has a run going; wait for it to end`);
    }
    await this.#dueNow(id, sync.state === 'done' ? 'active' : sync.state);
  }

  /** Starts a paused sync again: its paused run goes on from its first unacknowledged page. */
  async resume(projectId: number, id: number): Promise<void> {
    const sync = await this.get(projectId, id);
    if (sync.state !== 'paused') throw new ActionableError(409, 'not_paused', `cohort sync ${id} is not paused`);
    await this.#dueNow(id, 'active');
  }

  async #dueNow(id: number, state: 'active' | 'paused'): Promise<void> {
    const now = Date.now();
    await this.deps.store.db.updateTable('cohort_syncs').set({ state, state_reason: null, next_run_at: now, updated_at: now }).where('id', '=', id).execute();
    await this.tick();
  }

  async remove(projectId: number, id: number): Promise<void> {
    await this.get(projectId, id);
    await this.deps.store.db.transaction().execute(async (trx) => {
      const runs = trx.selectFrom('sync_runs').select('id').where('sync_id', '=', id);
      // Pages waiting in the outbox are not sent for a sync that is gone (only its current run queues any).
      const current = (await trx.selectFrom('cohort_syncs').select('current_run_id').where('id', '=', id).executeTakeFirst())?.current_run_id;
      if (current != null) await stopQueuedPages(trx, current, Date.now());
      await trx.deleteFrom('sync_snapshots').where('run_id', 'in', runs).execute();
      await trx.deleteFrom('sync_pages').where('run_id', 'in', runs).execute();
      await trx.deleteFrom('sync_page_ids').where('run_id', 'in', runs).execute();
      await trx.deleteFrom('sync_runs').where('sync_id', '=', id).execute();
      await trx.deleteFrom('cohort_syncs').where('id', '=', id).execute();
    });
  }
}


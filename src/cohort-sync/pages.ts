import type { Transaction } from 'kysely';
import type { SyncConfig } from '../config.js';
import type { Outbox } from '../delivery/outbox.js';
import type { DeliveryOutcome, DeliveryOwner } from '../delivery/owners.js';
import { completeRun, countAck, endRun, findRun, runEnvelope } from '../store/cohort-sync-repo.js';
import type { Dialect } from '../store/database.js';
import { requeueDeliveries } from '../store/outbox-repo.js';
import { readJson, type Database } from '../store/schema.js';
import { ackPage, countQueuedPages, markPagesQueued, pageMembersJson, pagesToQueue, stopPage, stopQueuedPages } from '../store/sync-pages-repo.js';
import { pauseSync, type SyncEvents } from './notices.js';
import { COHORT_SYNC_POLICY, pageBody, type PageEnvelope } from './wire.js';

type Trx = Transaction<Database>;
export const PAGE_OWNER = 'cohort-sync';
/** Runs whose envelope a process keeps at hand. */
const RUN_CONTEXTS = 64;

interface RunContext {
  envelope: PageEnvelope;
  connectionId: number;
  exported: string[];
}

/**
 * A run's pages in the outbox: put there up to pagesInFlight at a time, built as they go (from
 * their fixed ids and the profiles as they are then), and acknowledged, stopped or paused as
 * their deliveries end. A page sent before goes again as the same delivery (same body, same
 * webhook-id). Also the owner of the pages' deliveries: their endings move the run.
 */
export class PageQueue implements DeliveryOwner {
  readonly #runs = new Map<number, RunContext>();

  constructor(
    private readonly deps: {
      dialect: Dialect;
      outbox: Outbox;
      config: SyncConfig;
      /** A run succeeded and superseded its sync's previous base: its data can go. */
      superseded(trx: Trx, now: number): Promise<void>;
      events?: SyncEvents;
    },
  ) {}

  /**
   * Puts the run's next pages in the outbox, in page order, until pagesInFlight are queued and
   * unacknowledged. Callers hold the run's row lock (finished updates it first), so two endings
   * of the same run never queue the same page.
   */
  async queue(trx: Trx, runId: number, now: number): Promise<void> {
    const { pagesInFlight } = this.deps.config;
    const out = await countQueuedPages(trx, runId);
    const room = pagesInFlight - out;
    // Refilled by halves, not a page per acknowledgement: batches cost fewer statements per page.
    if (room <= 0 || (out > 0 && room < pagesInFlight / 2)) return;
    const pages = await pagesToQueue(trx, runId, room);
    if (pages.length === 0) return;
    const again = pages.flatMap((p) => (p.delivery_id === null ? [] : [{ page: p.page, deliveryId: p.delivery_id }]));
    if (again.length > 0) await requeueDeliveries(trx, { ids: again.map((p) => p.deliveryId) }, now, ['succeeded']);
    const fresh = pages.filter((p) => p.delivery_id === null);
    const queued = [...again];
    if (fresh.length > 0) {
      const { envelope, connectionId, exported } = await this.#context(trx, runId);
      const bodies: string[] = [];
      for (const page of fresh) bodies.push(pageBody(envelope, page.action, page.page, await pageMembersJson(trx, this.deps.dialect, envelope.projectId, page, exported)));
      const deliveries = await this.deps.outbox.enqueue(
        trx,
        fresh.map((page, i) => ({
          projectId: envelope.projectId,
          connectionId,
          ownerKind: PAGE_OWNER,
          ownerId: `${runId}:${page.page}`,
          policy: COHORT_SYNC_POLICY,
          contentType: 'application/json',
          body: bodies[i]!,
        })),
        now,
      );
      fresh.forEach((page, i) => queued.push({ page: page.page, deliveryId: deliveries[i]!.id }));
    }
    await markPagesQueued(trx, runId, queued);
  }

  /** What every page of a run is built with; fixed for the run, so read once per run and process. */
  async #context(trx: Trx, runId: number): Promise<RunContext> {
    const known = this.#runs.get(runId);
    if (known) return known;
    const { run, sync } = await runEnvelope(trx, runId);
    const context: RunContext = {
      envelope: {
        projectId: sync.project_id,
        cohortId: sync.cohort_id,
        cohortName: run.cohort_name ?? '',
        cohortDescription: run.cohort_description ?? '',
        sessionId: run.session_id,
        totalPages: run.total_pages,
      },
      connectionId: sync.connection_id,
      exported: readJson<string[]>(sync.properties_to_export),
    };
    if (this.#runs.size >= RUN_CONTEXTS) this.#runs.delete(this.#runs.keys().next().value!);
    this.#runs.set(runId, context);
    return context;
  }

  /**
   * A page's delivery ended (inside the transaction that records it): acknowledge it and queue
   * more, finish the run, or fail or pause it. The run's row is updated before anything more is
   * queued, which locks it on PostgreSQL: endings of one run's pages take turns. A failed or
   * paused run always keeps its failing page stopped, so resuming it always has a page to send.
   */
  async finished(trx: Trx, outcome: DeliveryOutcome): Promise<void> {
    const [runId, pageNo] = outcome.delivery.owner_id.split(':').map(Number) as [number, number];
    const now = Date.now();
    if (outcome.outcome === 'delivered') {
      if (!(await ackPage(trx, runId, pageNo))) return; // its run was abandoned, or this ending was recorded already
      const run = await countAck(trx, runId);
      // A page of a run that failed or paused meanwhile still counts; nothing more is sent until it resumes.
      if (run.state !== 'running') return;
      if (run.pages_acked < run.total_pages) return this.queue(trx, runId, now);
      if (await completeRun(trx, run, now)) await this.deps.superseded(trx, now);
      await this.#tell(trx, 'cohort_sync.run_succeeded', runId, now);
      return;
    }
    const reason = outcome.reason ?? `HTTP ${outcome.status ?? '(no answer)'}`;
    // The page goes again, as the same delivery, when the run is resumed.
    if (!(await stopPage(trx, runId, pageNo))) return;
    const paused = outcome.outcome === 'rejected';
    const syncId = await endRun(trx, runId, paused ? 'paused' : 'failed', reason);
    if (syncId === undefined) return;
    // Pages queued behind it wait for the resume instead of going out to a failing receiver.
    await stopQueuedPages(trx, runId, paused ? 'the cohort sync paused' : 'the cohort sync run failed', now);
    if (paused) await pauseSync(trx, this.deps.outbox, syncId, `the receiver refused page ${pageNo}: ${reason}`, now, this.deps.events);
    else await this.#tell(trx, 'cohort_sync.run_failed', runId, now);
  }

  /** A run's end as an event, for the subscriptions that want it. */
  async #tell(trx: Trx, type: string, runId: number, now: number): Promise<void> {
    const { events } = this.deps;
    if (!events) return;
    const { envelope, connectionId } = await this.#context(trx, runId);
    const run = await findRun(trx, runId);
    if (!run) return;
    const summary = { id: run.id, session_id: run.session_id, kind: run.kind, total_pages: run.total_pages, members_added: run.members_added, members_removed: run.members_removed, ...(run.error ? { error: run.error } : {}) };
    await events.emit(trx, envelope.projectId, type, [{ sync_id: run.sync_id, cohort_id: envelope.cohortId, connection_id: connectionId, run: summary }], now);
  }
}

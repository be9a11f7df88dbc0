import type { Transaction } from 'kysely';
import type { Logger } from 'pino';
import { evaluationProblem } from '../cohorts/cohort-admin.js';
import type { Definition } from '../cohorts/definition.js';
import type { MembershipConfig } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import { compileDefinition } from '../store/cohort-sql.js';
import { cohortDefinitions, cohortLabel } from '../store/cohorts-repo.js';
import type { Store } from '../store/database.js';
import { addMembers, allWatches, hasDirty, markDirty, membersOf, memberForms, sweepSlice, recordBaseline, recordedMembers, matchingAmong, removeMembers, takeDirty, watchesOf, type WatchRow } from '../store/membership-repo.js';
import type { Database } from '../store/schema.js';
import type { Emitter } from '../subscriptions/emitter.js';

type Trx = Transaction<Database>;

/** A surface that follows watched cohorts (webhook messages): told in the transactions that change them. */
export interface MembershipListener {
  /** Users came to match a watched cohort (recorded as its members now). */
  entered(trx: Trx, watch: { cohortId: number; projectId: number }, ids: string[], now: number): Promise<void>;
  /** A watched cohort's members were recorded for the first time (its baseline). */
  baselined(trx: Trx, watch: { cohortId: number; projectId: number }, now: number): Promise<void>;
}

type Change = 'cohort.member_entered' | 'cohort.member_exited';

/**
 * Live membership of the watched cohorts (a cohort is watched while an enabled subscription wants
 * its member events, or an enabled ASAP or as-met message follows it). Three kinds of work, each in one transaction with the events it causes:
 * - the baseline of a newly watched cohort: its members recorded in one statement, with no
 *   `entered` event for each (or, with COHORTCAST_WATCH_BASELINE=announce, one for each);
 * - the profiles ingestion touched (dirty_profiles, marked in the ingesting transaction),
 *   evaluated against the project's watched cohorts: taking them, the membership changes and the
 *   events commit together, so a crash loses no change and emits none twice;
 * - the sweep (a schedule, every COHORTCAST_MEMBERSHIP_SWEEP_INTERVAL_MS), which finds the
 *   changes time alone makes ("not seen for 21 days", "bought in the last 30 days").
 */
export class MembershipEvaluator {
  readonly #listeners: MembershipListener[] = [];

  constructor(private readonly deps: { store: Store; emitter: Emitter; config: MembershipConfig; log: Logger; metrics: Metrics }) {}

  listen(listener: MembershipListener): void {
    this.#listeners.push(listener);
  }

  /** One pass of the work loop: a baseline to record, or a batch of touched profiles. Answers whether more may wait. */
  async pass(): Promise<boolean> {
    const { store } = this.deps;
    // Cheap reads first: nearly every pass finds nothing to do, and opens no transaction.
    const watches = await allWatches(store.db);
    if (watches.length === 0) return false;
    const baseline = watches.find((w) => w.state === 'baseline');
    if (baseline && (await this.#baseline(baseline))) return true;
    if (!(await hasDirty(store.db))) return false;
    let taken = 0;
    await store.db.transaction().execute(async (trx) => {
      const dirty = await takeDirty(trx, store.dialect, this.deps.config.batch);
      if (!dirty) return;
      const projectWatches = await watchesOf(trx, dirty.projectId);
      if (projectWatches.some((w) => w.state === 'baseline')) {
        // A baseline being recorded (by another process) may predate these changes: they wait for it.
        await markDirty(trx, dirty.projectId, dirty.ids, Date.now());
        return;
      }
      taken = dirty.ids.length;
      const watches = projectWatches.filter((w) => w.state === 'live');
      if (watches.length === 0) return;
      const all = await cohortDefinitions(trx, dirty.projectId);
      const now = Date.now();
      for (const w of watches) {
        const condition = this.#condition(w, all, now);
        if (!condition) continue;
        const matching = await matchingAmong(trx, dirty.projectId, condition, dirty.ids);
        const recorded = await recordedMembers(trx, w.cohort_id, dirty.ids);
        await this.#apply(trx, w, [...matching].filter((id) => !recorded.has(id)), [...recorded].filter((id) => !matching.has(id)), now, 'evaluation');
      }
    });
    return taken > 0;
  }

  /**
   * The sweep: every live watch, read in slices of COHORTCAST_MEMBERSHIP_SWEEP_SLICE profiles (the
   * event loop and the database are handed back between slices), each slice's changes applied in
   * a transaction of their own.
   */
  async sweep(): Promise<void> {
    const { store, config, metrics } = this.deps;
    const stop = metrics.membershipSweepDuration.startTimer();
    const totals = { cohorts: 0, entered: 0, exited: 0 };
    for (const w of await allWatches(store.db)) {
      if (w.state !== 'live') continue;
      totals.cohorts++;
      const all = await cohortDefinitions(store.db, w.project_id);
      const now = Date.now();
      const condition = this.#condition(w, all, now);
      if (!condition) continue;
      let after: string | null = null;
      do {
        const slice = await sweepSlice(store.db, { cohortId: w.cohort_id, projectId: w.project_id }, condition, after, config.sweepSlice);
        after = slice.last;
        if (slice.entered.length > 0 || slice.exited.length > 0) {
          await store.db.transaction().execute(async (trx) => {
            // Read again where it is written: the evaluator may have moved these profiles since.
            const entering = await matchingAmong(trx, w.project_id, condition, slice.entered);
            const staying = await matchingAmong(trx, w.project_id, condition, slice.exited);
            const applied = await this.#apply(trx, w, [...entering], slice.exited.filter((id) => !staying.has(id)), now, 'sweep');
            totals.entered += applied.entered;
            totals.exited += applied.exited;
          });
        }
        await new Promise((resolve) => setImmediate(resolve));
      } while (after !== null);
    }
    const ms = Math.round(stop() * 1000);
    // Quiet when time changed nobody's membership: one line a minute would say nothing.
    if (totals.entered + totals.exited > 0) this.deps.log.info({ ...totals, ms }, 'live membership swept');
  }

  /** Answers whether this process recorded it (another may be recording it now). */
  async #baseline(w: WatchRow): Promise<boolean> {
    const { store, config, log } = this.deps;
    const all = await cohortDefinitions(store.db, w.project_id);
    const now = Date.now();
    return store.db.transaction().execute(async (trx) => {
      // A cohort gone or not evaluable is live with no members (its watch goes with its subscriptions).
      const condition = this.#condition(w, all, now);
      const members = await recordBaseline(trx, store.dialect, { cohortId: w.cohort_id, projectId: w.project_id }, condition, now);
      if (members === undefined) return false;
      log.info({ cohort: w.cohort_id, members }, 'a cohort is watched live from now on');
      for (const l of this.#listeners) await l.baselined(trx, { cohortId: w.cohort_id, projectId: w.project_id }, now);
      if (condition && config.baseline === 'announce') await this.#emit(trx, w, 'cohort.member_entered', await membersOf(trx, w.cohort_id), now);
      return true;
    });
  }

  #condition(w: WatchRow, all: ReadonlyMap<number, Definition>, now: number) {
    const definition = all.get(w.cohort_id);
    if (!definition || evaluationProblem(w.cohort_id, all)) return undefined;
    return compileDefinition(definition, { dialect: this.deps.store.dialect, projectId: w.project_id, now, cohorts: all });
  }

  async #apply(trx: Trx, w: WatchRow, entering: string[], exiting: string[], now: number, source: 'evaluation' | 'sweep'): Promise<{ entered: number; exited: number }> {
    // Only the changes this transaction made are announced (another may have made the same one first).
    const entered = await addMembers(trx, w.cohort_id, entering, now);
    const exited = await removeMembers(trx, w.cohort_id, exiting);
    // Counted before the commit: a transaction that then fails overcounts, which a counter may.
    this.deps.metrics.membershipChanges.inc({ change: 'entered', source }, entered.length);
    this.deps.metrics.membershipChanges.inc({ change: 'exited', source }, exited.length);
    await this.#emit(trx, w, 'cohort.member_entered', entered, now);
    await this.#emit(trx, w, 'cohort.member_exited', exited, now);
    if (entered.length > 0) for (const l of this.#listeners) await l.entered(trx, { cohortId: w.cohort_id, projectId: w.project_id }, entered, now);
    return { entered: entered.length, exited: exited.length };
  }

  async #emit(trx: Trx, w: WatchRow, type: Change, ids: string[], now: number): Promise<void> {
    if (ids.length === 0 || !this.deps.emitter.wants(w.project_id, type)) return;
    const label = await cohortLabel(trx, w.cohort_id);
    const forms = await memberForms(trx, this.deps.store.dialect, w.project_id, ids);
    const data = ids.map((id) => {
      const form = forms.get(id);
      return {
        distinct_id: id,
        cohort: { id: w.cohort_id, name: label?.name ?? '' },
        member: form ? (JSON.parse(`${form.sync}}`) as Record<string, unknown>) : { mixpanel_distinct_id: id },
        user: { $distinct_id: id, $properties: form?.properties ?? {} },
      };
    });
    await this.deps.emitter.emit(trx, w.project_id, type, data, now);
  }
}

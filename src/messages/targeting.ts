import type { Transaction } from 'kysely';
import type { Logger } from 'pino';
import { evaluationProblem } from '../cohorts/cohort-admin.js';
import type { MembershipListener } from '../membership/evaluator.js';
import type { ScheduledRun, ScheduleHandler } from '../scheduling/scheduler.js';
import { compileDefinition } from '../store/cohort-sql.js';
import { cohortDefinitions } from '../store/cohorts-repo.js';
import type { Store } from '../store/database.js';
import { isPermanentFailure } from '../store/failures.js';
import { watchState } from '../store/membership-repo.js';
import { cohortMemberList, idList, matchingProfiles, targetUsers, type Eligibility } from '../store/message-ledger-repo.js';
import { countRun, insertRun, liveMessagesOf, liveRun, lockMessage, markSeeded, type MessageRow } from '../store/messages-repo.js';
import { readJson, type Database } from '../store/schema.js';
import { isLive, limitOf, periodOf, sendsInWeekOf, timezoneOf, type MessageSchedule } from './schedule.js';

type Trx = Transaction<Database>;

/** Who a message may target at `now`: a recurring one sends again, within its limit. */
export function eligibility(m: MessageRow, now: number): Eligibility {
  const schedule = readJson<MessageSchedule>(m.schedule);
  const limit = limitOf(schedule);
  return {
    again: m.kind === 'recurring' || m.kind === 'as_met',
    ...(limit ? { limit: { period: periodOf(limit.per, timezoneOf(schedule), now), max: limit.max } } : {}),
  };
}

/**
 * Puts users in a message's ledger, waiting for the batcher, in the transactions that find them:
 * - a scheduled or recurring message's run (the handler of its schedule, kind 'message'): the
 *   users matching the cohort at the run, less those the message may not send to again;
 * - a live (ASAP or as-met) message: when its cohort's members are first recorded (its one run
 *   at the start, or the cohort's baseline, whichever finds them recorded), the members then;
 *   after that each user as live membership sees them enter.
 */
export class MessageTargeting implements ScheduleHandler, MembershipListener {
  constructor(private readonly deps: { store: Store; log: Logger; wake(): void }) {}

  async run(job: ScheduledRun): Promise<void> {
    const { store, log } = this.deps;
    let targeted = 0;
    try {
      await store.db.transaction().execute(async (trx) => {
        const m = await lockMessage(trx, store.dialect, Number(job.key));
        if (!m || m.enabled !== 1) return;
        if (isLive(m.kind)) {
          targeted = await this.#seed(trx, m, job.now);
          return;
        }
        // A message every N weeks runs on the weeks between too, and sends nothing.
        if (!sendsInWeekOf(readJson<MessageSchedule>(m.schedule), m.created_at, job.planned)) return;
        const all = await cohortDefinitions(trx, m.project_id);
        const definition = all.get(m.cohort_id);
        const problem = definition ? evaluationProblem(m.cohort_id, all) : `cohort ${m.cohort_id} no longer exists`;
        if (problem || !definition) {
          log.warn({ message: m.id, reason: problem }, 'a webhook message run sent nothing: its cohort cannot be evaluated');
          return;
        }
        const condition = compileDefinition(definition, { dialect: store.dialect, projectId: m.project_id, now: job.now, cohorts: all });
        const runId = await insertRun(trx, m.id, m.kind === 'scheduled' ? 'scheduled' : 'recurring', job.planned, job.now);
        // The calendar goes by the scheduler's clock; the ledger's due times by the wall clock the batcher reads.
        targeted = await targetUsers(trx, m.id, runId, matchingProfiles(m.project_id, condition), eligibility(m, job.now), Date.now());
        await countRun(trx, runId, { users: targeted, outstanding: targeted }, job.now);
        log.info({ message: m.id, run: runId, users: targeted }, 'a webhook message run targeted its users');
      });
    } catch (err) {
      // The cohort cannot be evaluated on this data: trying again at once would fail the same way.
      if (!isPermanentFailure(err)) throw err;
      log.warn({ message: job.key, err }, 'a webhook message run sent nothing: its cohort cannot be evaluated');
    }
    if (targeted > 0) this.deps.wake();
  }

  async entered(trx: Trx, watch: { cohortId: number }, ids: string[], now: number): Promise<void> {
    // Not locked: the upsert is safe row by row, and the evaluator's transaction, which holds its
    // members' rows, should not also wait for a batcher's hold on the message.
    for (const m of await liveMessagesOf(trx, watch.cohortId)) {
      const runId = await liveRun(trx, m.id, now);
      const targeted = await targetUsers(trx, m.id, runId, idList(this.deps.store.dialect, ids), eligibility(m, now), now);
      await countRun(trx, runId, { users: targeted, outstanding: targeted }, now);
      if (targeted > 0) setImmediate(() => this.deps.wake());
    }
  }

  async baselined(trx: Trx, watch: { cohortId: number }, now: number): Promise<void> {
    for (const found of await liveMessagesOf(trx, watch.cohortId)) {
      const m = await lockMessage(trx, this.deps.store.dialect, found.id);
      if (m && m.enabled === 1 && (await this.#seed(trx, m, now)) > 0) setImmediate(() => this.deps.wake());
    }
  }

  /** A live message's first users: the cohort's recorded members, once, when they are recorded. */
  async #seed(trx: Trx, m: MessageRow, now: number): Promise<number> {
    if (m.seeded === 1 || (await watchState(trx, m.cohort_id)) !== 'live') return 0;
    const runId = await liveRun(trx, m.id, now);
    const targeted = await targetUsers(trx, m.id, runId, cohortMemberList(m.cohort_id), eligibility(m, now), Date.now());
    await countRun(trx, runId, { users: targeted, outstanding: targeted }, now);
    await markSeeded(trx, m.id, true);
    this.deps.log.info({ message: m.id, users: targeted }, 'a live webhook message queued the users matching when it started');
    return targeted;
  }
}

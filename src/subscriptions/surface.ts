import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { DeliveryEngine } from '../delivery/engine.js';
import type { Metrics } from '../observability/metrics.js';
import { MembershipEvaluator } from '../membership/evaluator.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { every } from '../scheduling/timing.js';
import { WorkLoop } from '../scheduling/work-loop.js';
import type { Store } from '../store/database.js';
import type { IngestTap } from '../store/ingest-writer.js';
import { subscriptionBacklog } from '../store/webhook-events-repo.js';
import type { ProfileForms } from '../store/profile-writer.js';
import { SubscriptionAdmin } from './admin.js';
import { Emitter } from './emitter.js';
import { FanOut } from './fanout.js';
import { SubscriptionIndex } from './index.js';
import { deliveryProducer, ingestTap, profileProducer } from './producers.js';

export const MEMBERSHIP_SWEEP_KIND = 'membership-sweep';

export interface SubscriptionSurface {
  admin: SubscriptionAdmin;
  emitter: Emitter;
  /** For the ingest writer: marks and event.ingested, in the ingesting transaction. */
  tap: IngestTap;
  /** For the profile writer: marks and profile.* events. */
  profileChanges: NonNullable<ProfileForms['changed']>;
  evaluator: MembershipEvaluator;
  /** The work loops (fan-out, membership): started with the engine. */
  loops: WorkLoop[];
  index: SubscriptionIndex;
  /** The project's watched cohorts changed (in this process): its index is read again and membership work looked for now. */
  watchesChanged(projectId: number): Promise<void>;
}

/**
 * Event subscriptions and live cohort membership plugged into the engine: the emitter producers
 * write events through, the fan-out that turns them into deliveries, the membership evaluator and
 * its sweep (a schedule), and an observer of delivery endings (connection.disabled,
 * delivery.exhausted).
 */
export function subscriptionSurface(deps: { store: Store; engine: DeliveryEngine; scheduler: Scheduler; config: Config; log: Logger; metrics: Metrics }): SubscriptionSurface {
  const { store, engine, scheduler, config, log, metrics } = deps;
  metrics.backlogSource.read = () => subscriptionBacklog(store.db);
  const index = new SubscriptionIndex(store, config.subscriptions.indexTtlMs);
  const fanout = new FanOut({ store, index, outbox: engine.outbox, batch: config.subscriptions.fanoutBatch, sent: () => engine.dispatcher.wake(true) });
  const fanoutLoop = new WorkLoop('fanning events out to subscriptions', config.subscriptions.fanoutIntervalMs, () => fanout.pass(), log);
  // Woken after the writing transaction has had its turn to commit; the poll catches any it missed.
  const emitter = new Emitter(index, () => setImmediate(() => fanoutLoop.wake()));
  const evaluator = new MembershipEvaluator({ store, emitter, config: config.membership, log, metrics });
  const evaluateLoop = new WorkLoop('evaluating live cohort membership', config.membership.evaluateIntervalMs, () => evaluator.pass(), log);
  scheduler.register(MEMBERSHIP_SWEEP_KIND, { run: () => evaluator.sweep() }, { singleton: every(config.membership.sweepIntervalMs) });
  engine.owners.observe(deliveryProducer(emitter));
  const admin = new SubscriptionAdmin({ store, index, engine, watchesChanged: () => evaluateLoop.wake() });
  return {
    admin,
    emitter,
    evaluator,
    tap: ingestTap(index, () =>
      setImmediate(() => {
        evaluateLoop.wake();
        fanoutLoop.wake();
      }),
    ),
    profileChanges: profileProducer(index, emitter, () => setImmediate(() => evaluateLoop.wake())),
    loops: [fanoutLoop, evaluateLoop],
    index,
    async watchesChanged(projectId) {
      await index.reload(projectId);
      evaluateLoop.wake();
    },
  };
}

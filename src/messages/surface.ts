import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { DeliveryEngine } from '../delivery/engine.js';
import type { MembershipEvaluator } from '../membership/evaluator.js';
import type { Metrics } from '../observability/metrics.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { WorkLoop } from '../scheduling/work-loop.js';
import type { Store } from '../store/database.js';
import { MESSAGE_SCHEDULE_KIND } from '../store/messages-repo.js';
import { MessageAdmin } from './admin.js';
import { MESSAGE_OWNER, MessageBatcher } from './batcher.js';
import { MessageTargeting } from './targeting.js';

export interface MessageSurface {
  admin: MessageAdmin;
  /** Cuts waiting users into batches: started with the engine. */
  loop: WorkLoop;
}

/**
 * Webhook messages plugged into the engine: the handler of their schedules (runs that target
 * users), a listener of live membership (ASAP and as-met users as they enter), the batcher's work
 * loop, and the owner of the batches' deliveries. Mixpanel's exactly-200 policy is a core one.
 */
export function messageSurface(deps: { store: Store; engine: DeliveryEngine; scheduler: Scheduler; evaluator: MembershipEvaluator; config: Config; log: Logger; metrics: Metrics; now?: () => number; watchesChanged(projectId: number): Promise<void> }): MessageSurface {
  const { store, engine, scheduler, evaluator, config, log, metrics } = deps;
  let loop: WorkLoop | undefined;
  const wake = () => loop?.wake();
  const batcher = new MessageBatcher({ store, outbox: engine.outbox, config: config.messages, metrics, sent: () => engine.dispatcher.wake(true), wake });
  loop = new WorkLoop('cutting webhook message batches', config.messages.batchIntervalMs, () => batcher.pass(), log);
  engine.owners.register(MESSAGE_OWNER, batcher);
  const targeting = new MessageTargeting({ store, log, wake });
  scheduler.register(MESSAGE_SCHEDULE_KIND, targeting);
  evaluator.listen(targeting);
  const admin = new MessageAdmin({
    store,
    engine,
    ...(deps.now ? { now: deps.now } : {}),
    async changed(projectId) {
      await deps.watchesChanged(projectId);
      void scheduler.tick();
    },
  });
  return { admin, loop };
}

import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { DeliveryEngine } from '../delivery/engine.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { every } from '../scheduling/timing.js';
import type { Store } from '../store/database.js';
import type { Emitter } from '../subscriptions/emitter.js';
import { AlertAdmin } from './admin.js';
import { ALERT_CHECKS_KIND, AlertChecker } from './checker.js';

/**
 * Alerts plugged into the engine: the checker is a singleton schedule; its firings go out through
 * the outbox on the subscriptions' channels (the standard, slack and email policies) and as
 * alert.fired events through the Emitter.
 */
export function alertSurface(deps: { store: Store; engine: DeliveryEngine; scheduler: Scheduler; emitter: Emitter; config: Config; log: Logger; now?: () => number }): { admin: AlertAdmin; checker: AlertChecker } {
  const { store, engine, scheduler, emitter, config, log } = deps;
  const checker = new AlertChecker({ store, outbox: engine.outbox, emitter, publicUrl: config.alerts.publicUrl, log, wake: () => engine.dispatcher.wake(true) });
  scheduler.register(ALERT_CHECKS_KIND, checker, { singleton: every(config.alerts.checkIntervalMs) });
  return { admin: new AlertAdmin({ store, engine, checker, ...(deps.now ? { now: deps.now } : {}) }), checker };
}

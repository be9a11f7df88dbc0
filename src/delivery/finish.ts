import type { DeliveryConfig } from '../config.js';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import { disableConnection, throttleConnection } from '../store/connections-repo.js';
import type { Store } from '../store/database.js';
import { recordAttempts, type ClaimedDelivery } from '../store/leases.js';
import type { AttemptResult, Verdict } from './classify.js';
import type { DeliveryOutcome, OwnerRegistry } from './owners.js';
import type { RetryPolicy } from './policies.js';

/** One attempt, sent and judged, waiting to be recorded. */
export interface Completion {
  delivery: ClaimedDelivery;
  /** Its connection, for a connection-bound channel: what a 410 disables and a 429 throttles. */
  connectionId: number | null;
  policy: RetryPolicy;
  result: AttemptResult;
  verdict: Verdict;
  startedAt: number;
  /** Set when the delivery will be tried again. */
  nextAttemptAt: number | undefined;
}

/** Receiver text as PostgreSQL can store it: no NUL, well-formed, at most `bytes` UTF-8 bytes. */
export function storable(text: string, bytes = Infinity): string {
  const clean = text.replace(/\0/g, '\ufffd').toWellFormed();
  if (Buffer.byteLength(clean) <= bytes) return clean;
  // Cut on a character boundary: decoding a cut multi-byte sequence would add U+FFFD.
  return Buffer.from(clean).subarray(0, bytes).toString('utf8').replace(/\ufffd$/, '');
}

type AttemptOutcome = 'success' | 'retry' | DeliveryOutcome['outcome'];

function outcomeOf(c: Completion): AttemptOutcome {
  if (c.verdict.kind === 'success') return 'success';
  if (c.verdict.kind === 'retry') return c.nextAttemptAt === undefined ? 'exhausted' : 'retry';
  return c.verdict.permanent ? 'rejected' : 'failed';
}

function reasonOf(c: Completion): string | null {
  if (c.verdict.kind === 'success') return null;
  const truncated = c.result.truncated ? ' (reply cut off at the read limit)' : '';
  return storable(c.verdict.reason + truncated, 2048);
}

/**
 * Records a batch of attempts in one transaction: the attempt log, each delivery's new state
 * (only under the claim that made the attempt), destinations disabled or slowed down, and, for
 * deliveries that ended, their owner's reaction in the same transaction. On PostgreSQL a batch
 * that needs nothing beyond the recording (successes nobody owns, retries) is one statement,
 * atomic by itself: no BEGIN and COMMIT round trips around it.
 */
export async function finishAttempts(
  deps: { store: Store; owners: OwnerRegistry; config: DeliveryConfig; metrics: Metrics; log: Logger },
  worker: string,
  batch: Completion[],
): Promise<{ ownersTold: boolean }> {
  const { store, owners, config, metrics } = deps;
  let ownersTold = false;
  const now = Date.now();
  const finished: { channel: string; outcome: DeliveryOutcome['outcome'] }[] = [];
  const attempts = batch.map((c) => ({
    delivery_id: c.delivery.id,
    attempt: c.delivery.attempts + 1,
    worker,
    started_at: c.startedAt,
    duration_ms: c.result.durationMs,
    status: c.result.status ?? null,
    response_headers: c.result.headers ? storable(JSON.stringify(c.result.headers)) : null,
    response_body: c.result.status === undefined ? null : storable(c.result.body, config.storedResponseBytes),
    error: c.result.error ? storable(`${c.result.error.kind}: ${c.result.error.message}`, 2048) : null,
    outcome: outcomeOf(c),
    reason: reasonOf(c),
  }));
  const outcomes = batch.map((c) => {
    const outcome = outcomeOf(c);
    const ended = outcome !== 'retry';
    return {
      id: c.delivery.id,
      token: c.delivery.lease_token,
      attempts: c.delivery.attempts + 1,
      roundAttempts: c.delivery.round_attempts + 1,
      startedAt: c.startedAt,
      state: ended ? (outcome === 'success' ? ('succeeded' as const) : ('failed' as const)) : ('pending' as const),
      outcome: ended ? (outcome === 'success' ? 'delivered' : outcome) : null,
      nextAttemptAt: c.nextAttemptAt ?? c.delivery.next_attempt_at,
      lastStatus: c.result.status ?? null,
      lastError: reasonOf(c),
      completedAt: ended ? now : null,
      headers: c.result.next ? JSON.stringify(c.result.next.headers) : null,
    };
  });
  /** What the recording's transaction must do besides it, for one attempt. */
  const followUp = (c: Completion): boolean => {
    const outcome = outcomeOf(c);
    if (c.connectionId !== null && ((c.verdict.kind === 'fail' && c.verdict.disableDestination) || (c.verdict.kind === 'retry' && c.verdict.throttleMs))) return true;
    if (outcome === 'retry') return false;
    return owners.get(c.delivery.owner_kind) !== undefined || (outcome !== 'success' && owners.observers.length > 0);
  };
  const endings = (changed: Set<number>) => {
    for (const c of batch) {
      const outcome = outcomeOf(c);
      if (changed.has(c.delivery.id) && outcome !== 'retry') finished.push({ channel: c.delivery.channel, outcome: outcome === 'success' ? 'delivered' : outcome });
    }
  };
  if (store.dialect === 'postgres' && !batch.some(followUp)) {
    endings(await recordAttempts(store, store.db, attempts, outcomes, now));
  } else {
    await store.db.transaction().execute(async (trx) => {
      const changed = await recordAttempts(store, trx, attempts, outcomes, now);
      endings(changed);
      for (const c of batch) {
        const outcome = outcomeOf(c);
        const ended = outcome !== 'retry';
        const reason = reasonOf(c);
        // The lease ran out and another claim holds this delivery now: it will record the end.
        if (!changed.has(c.delivery.id)) continue;
        if (c.connectionId !== null && c.verdict.kind === 'fail' && c.verdict.disableDestination) {
          await disableConnection(trx, c.connectionId, `disabled after ${reason}`, now);
          for (const o of owners.observers) await o.connectionDisabled?.(trx, c.delivery.project_id, c.connectionId, `disabled after ${reason}`);
        }
        if (c.connectionId !== null && c.verdict.kind === 'retry' && c.verdict.throttleMs) await throttleConnection(trx, c.connectionId, now + Math.min(c.verdict.throttleMs, config.maxRetryAfterMs));
        if (!ended) continue;
        const final = outcome === 'success' ? 'delivered' : outcome;
        const ending: DeliveryOutcome = {
          delivery: c.delivery,
          state: final === 'delivered' ? 'succeeded' : 'failed',
          outcome: final,
          status: c.result.status ?? null,
          reason,
        };
        const owner = owners.get(c.delivery.owner_kind);
        if (owner) {
          ownersTold = true;
          await owner.finished(trx, ending);
        }
        if (final !== 'delivered') for (const o of owners.observers) await o.failed?.(trx, ending);
      }
    });
  }
  // Counted once the transaction has committed: a rolled-back batch is attempted again.
  for (const c of batch) {
    const outcome = outcomeOf(c);
    metrics.deliveryAttempts.inc({ channel: c.delivery.channel, outcome });
    metrics.attemptDuration.observe({ channel: c.delivery.channel, outcome }, c.result.durationMs / 1000);
  }
  for (const f of finished) metrics.deliveriesFinished.inc(f);
  // Operational events: a destination switched off, or a delivery that will not be tried again.
  for (const c of batch) {
    const outcome = outcomeOf(c);
    const where = { delivery: c.delivery.id, webhookId: c.delivery.webhook_id, channel: c.delivery.channel, connection: c.connectionId, owner: `${c.delivery.owner_kind}:${c.delivery.owner_id}` };
    if (c.verdict.kind === 'fail' && c.verdict.disableDestination) deps.log.warn({ ...where, reason: reasonOf(c) }, 'destination disabled');
    if (outcome === 'exhausted' || outcome === 'rejected') deps.log.warn({ ...where, outcome, reason: reasonOf(c) }, 'delivery failed for good');
  }
  return { ownersTold };
}

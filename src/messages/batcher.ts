import type { Transaction } from 'kysely';
import type { MessagesConfig } from '../config.js';
import type { Outbox } from '../delivery/outbox.js';
import type { DeliveryOutcome, DeliveryOwner } from '../delivery/owners.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/database.js';
import { dropUsers, endBatch, insertBatches, markSent, markUnsent, openBatch, openBatches, queueUsers, runsOf, setBatchDeliveries, waitingUsers } from '../store/message-ledger-repo.js';
import { countRun, lockMessage, messageById, messagesWithDueUsers, type MessageRow } from '../store/messages-repo.js';
import { readJson, type Database } from '../store/schema.js';
import { isLive } from './schedule.js';
import { BATCH_SIZE, formBody, MESSAGE_CONTENT_TYPE, MESSAGE_POLICY, userJson } from './wire.js';

type Trx = Transaction<Database>;
export const MESSAGE_OWNER = 'message';

/**
 * Turns a message's waiting users into batches of 50, each one delivery, and hears how they end.
 * Cutting takes the message's row lock (SKIP LOCKED: one process cuts a message at a time) and
 * keeps at most batchesInFlight of its batches in the outbox, each body built from the profiles
 * as they are then, so a message to a million users never holds them in memory or the outbox.
 * The ledger rows, the batch rows and the deliveries are written in one transaction; a batch's
 * ending moves its users (sent only on a 200) in the transaction that records it.
 */
export class MessageBatcher implements DeliveryOwner {
  constructor(private readonly deps: { store: Store; outbox: Outbox; config: MessagesConfig; metrics: Metrics; sent(): void; wake(): void }) {}

  /** One pass over the messages with users due; answers whether more may be waiting. */
  async pass(): Promise<boolean> {
    const { store } = this.deps;
    let more = false;
    let made = 0;
    for (const id of await messagesWithDueUsers(store.db, Date.now())) {
      const cut = await store.db.transaction().execute((trx) => this.#cut(trx, id, Date.now()));
      made += cut.batches;
      more ||= cut.full;
    }
    if (made > 0) this.deps.sent();
    return more;
  }

  async #cut(trx: Trx, id: number, now: number): Promise<{ batches: number; full: boolean }> {
    const { store, config, outbox, metrics } = this.deps;
    const m = await lockMessage(trx, store.dialect, id, { skip: true });
    if (!m || m.enabled !== 1) return { batches: 0, full: false };
    const open = (await openBatches(trx, id)).length;
    const room = config.batchesInFlight - open;
    // Refilled by halves, not a batch per ending: fewer, larger passes.
    if (room <= 0 || (open > 0 && room < config.batchesInFlight / 2)) return { batches: 0, full: false };
    const limit = room * BATCH_SIZE;
    const users = await waitingUsers(trx, store.dialect, { id, projectId: m.project_id, cohortId: m.cohort_id }, now, limit);
    const live = isLive(m.kind);
    const gone = users.filter((u) => u.properties === null).map((u) => u.distinct_id);
    const left = live ? users.filter((u) => u.properties !== null && !u.member).map((u) => u.distinct_id) : [];
    await this.#drop(trx, m, gone, 'the profile was deleted', now);
    await this.#drop(trx, m, left, 'no longer matches the cohort', now);
    const sending = users.filter((u) => u.properties !== null && (!live || u.member));
    const only = m.properties === null ? null : readJson<string[]>(m.properties);
    const batches: string[][] = [];
    const bodies: string[] = [];
    for (let i = 0; i < sending.length; i += BATCH_SIZE) {
      const slice = sending.slice(i, i + BATCH_SIZE);
      batches.push(slice.map((u) => u.distinct_id));
      bodies.push(formBody(slice.map((u) => userJson(u.distinct_id, u.properties, only))));
    }
    const batchIds = await insertBatches(trx, id, batches, now);
    const deliveries = await outbox.enqueue(
      trx,
      batchIds.map((batchId, i) => ({ projectId: m.project_id, connectionId: m.connection_id, ownerKind: MESSAGE_OWNER, ownerId: batchId, policy: MESSAGE_POLICY, contentType: MESSAGE_CONTENT_TYPE, body: bodies[i]! })),
      now,
    );
    await setBatchDeliveries(trx, batchIds.map((batchId, i) => ({ batchId, deliveryId: deliveries[i]!.id })));
    for (const [i, batchId] of batchIds.entries()) await queueUsers(trx, id, batchId, batches[i]!, now);
    metrics.messageUsers.inc({ outcome: 'dropped' }, gone.length + left.length);
    return { batches: batchIds.length, full: users.length === limit };
  }

  async #drop(trx: Trx, m: MessageRow, ids: string[], reason: string, now: number): Promise<void> {
    if (ids.length === 0) return;
    const runs = await runsOf(trx, m.id, ids, 'waiting');
    await dropUsers(trx, m.id, ids, reason, now);
    for (const [runId, n] of runs) await countRun(trx, runId, { dropped: n, outstanding: -n }, now);
  }

  /**
   * A batch's delivery ended (in the transaction that records it). Exactly 200: its users are
   * sent. Anything else: a live message's users wait again on a backoff; a scheduled or recurring
   * message's are failed, for its next run to target again.
   */
  async finished(trx: Trx, outcome: DeliveryOutcome): Promise<void> {
    const { config, metrics } = this.deps;
    const batch = await openBatch(trx, Number(outcome.delivery.owner_id));
    if (!batch) return; // recorded already, or its message was deleted
    const m = await messageById(trx, batch.message_id);
    if (!m) return;
    const now = Date.now();
    const ids = JSON.parse(batch.user_ids) as string[];
    const runs = await runsOf(trx, m.id, ids, 'queued');
    const users = [...runs.values()].reduce((a, b) => a + b, 0);
    if (outcome.outcome === 'delivered') {
      await markSent(trx, m.id, batch.id, ids, now);
      for (const [runId, n] of runs) await countRun(trx, runId, { sent: n, outstanding: -n }, now);
      await endBatch(trx, batch.id, { outcome: 'sent', status: outcome.status, reason: null }, now);
      metrics.messageUsers.inc({ outcome: 'sent' }, users);
    } else {
      const reason = outcome.reason ?? `HTTP ${outcome.status ?? '(no answer)'}`;
      const retry = isLive(m.kind) ? { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs } : undefined;
      await markUnsent(trx, m.id, batch.id, ids, reason, retry, now);
      for (const [runId, n] of runs) await countRun(trx, runId, { failed: n, outstanding: retry ? 0 : -n }, now);
      await endBatch(trx, batch.id, { outcome: 'failed', status: outcome.status, reason }, now);
      metrics.messageUsers.inc({ outcome: 'unsent' }, users);
    }
    // Room in the outbox for the next batches, once this transaction has committed.
    setImmediate(() => this.deps.wake());
  }
}

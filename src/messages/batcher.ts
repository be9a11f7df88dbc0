import type { Transaction } from 'kysely';
import type { MessagesConfig } from '../config.js';
import type { Outbox } from '../delivery/outbox.js';
import type { DeliveryOutcome, DeliveryOwner } from '../delivery/owners.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/database.js';
import { countOpenBatches, dropUsers, endBatch, insertBatches, markSent, markUnsent, openBatch, queueUsers, setBatchDeliveries, waitingUsers, type NewBatch, type WaitingUser } from '../store/message-ledger-repo.js';
import { countRun, lockMessage, messagesWithDueUsers, type MessageRow } from '../store/messages-repo.js';
import { readJson, type Database } from '../store/schema.js';
import { isLive } from './schedule.js';
import { BATCH_SIZE, formBody, MESSAGE_CONTENT_TYPE, MESSAGE_POLICY, userJson } from './wire.js';

type Trx = Transaction<Database>;
export const MESSAGE_OWNER = 'message';

/** How many of `users` each run holds. */
function byRun(users: readonly WaitingUser[]): Map<number, number> {
  const runs = new Map<number, number>();
  for (const u of users) runs.set(u.run_id, (runs.get(u.run_id) ?? 0) + 1);
  return runs;
}

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
      // Most wakes come from endings that leave no room to refill yet: found out without a transaction.
      if ((await countOpenBatches(store.db, id)) > this.deps.config.batchesInFlight / 2) continue;
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
    const open = await countOpenBatches(trx, id);
    const room = config.batchesInFlight - open;
    // Refilled by halves, not a batch per ending: fewer, larger passes.
    if (room <= 0 || (open > 0 && room < config.batchesInFlight / 2)) return { batches: 0, full: false };
    const limit = room * BATCH_SIZE;
    const live = isLive(m.kind);
    const users = await waitingUsers(trx, store.dialect, { id, projectId: m.project_id, cohortId: m.cohort_id, live }, now, limit);
    await this.#drop(trx, m, users.filter((u) => u.properties === null), 'the profile was deleted', now);
    await this.#drop(trx, m, live ? users.filter((u) => u.properties !== null && !u.member) : [], 'no longer matches the cohort', now);
    const sending = users.filter((u) => u.properties !== null && (!live || u.member));
    const only = m.properties === null ? null : readJson<string[]>(m.properties);
    const batches: NewBatch[] = [];
    const bodies: string[] = [];
    for (let i = 0; i < sending.length; i += BATCH_SIZE) {
      const slice = sending.slice(i, i + BATCH_SIZE);
      batches.push({ ids: slice.map((u) => u.distinct_id), runs: byRun(slice) });
      bodies.push(formBody(slice.map((u) => userJson(u.distinct_id, u.properties, only))));
    }
    const batchIds = await insertBatches(trx, id, batches, live, now);
    const deliveries = await outbox.enqueue(
      trx,
      batchIds.map((batchId, i) => ({ projectId: m.project_id, connectionId: m.connection_id, ownerKind: MESSAGE_OWNER, ownerId: batchId, policy: MESSAGE_POLICY, contentType: MESSAGE_CONTENT_TYPE, body: bodies[i]! })),
      now,
    );
    await setBatchDeliveries(trx, batchIds.map((batchId, i) => ({ batchId, deliveryId: deliveries[i]!.id })));
    await queueUsers(trx, id, batchIds.map((batchId, i) => ({ batchId, ids: batches[i]!.ids })), now);
    metrics.messageUsers.inc({ outcome: 'dropped' }, users.length - sending.length);
    return { batches: batchIds.length, full: users.length === limit };
  }

  async #drop(trx: Trx, m: MessageRow, users: WaitingUser[], reason: string, now: number): Promise<void> {
    if (users.length === 0) return;
    await dropUsers(trx, m.id, users.map((u) => u.distinct_id), reason, now);
    for (const [runId, n] of byRun(users)) await countRun(trx, runId, { dropped: n, outstanding: -n }, now);
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
    const now = Date.now();
    const ids = JSON.parse(batch.user_ids) as string[];
    const runs = Object.entries(JSON.parse(batch.runs) as Record<string, number>).map(([run, n]) => [Number(run), n] as const);
    if (outcome.outcome === 'delivered') {
      await markSent(trx, batch.message_id, batch.id, ids, now);
      for (const [runId, n] of runs) await countRun(trx, runId, { sent: n, outstanding: -n }, now);
      await endBatch(trx, batch.id, { outcome: 'sent', status: outcome.status, reason: null }, now);
      metrics.messageUsers.inc({ outcome: 'sent' }, batch.users);
    } else {
      const reason = outcome.reason ?? `HTTP ${outcome.status ?? '(no answer)'}`;
      const retry = batch.retry === 1 ? { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs } : undefined;
      await markUnsent(trx, batch.message_id, batch.id, ids, reason, retry, now);
      for (const [runId, n] of runs) await countRun(trx, runId, { failed: n, outstanding: retry ? 0 : -n }, now);
      await endBatch(trx, batch.id, { outcome: 'failed', status: outcome.status, reason }, now);
      metrics.messageUsers.inc({ outcome: 'unsent' }, batch.users);
    }
    // Room in the outbox for the next batches, once this transaction has committed.
    setImmediate(() => this.deps.wake());
  }
}

import type { Transaction } from 'kysely';
import { setWatches } from '../store/membership-repo.js';
import { liveMessageCohorts } from '../store/messages-repo.js';
import type { Database } from '../store/schema.js';
import { enabledSubscriptions } from '../store/subscriptions-repo.js';
import { readJson } from '../store/schema.js';
import { MEMBER_EVENTS } from '../subscriptions/event-types.js';

/**
 * Makes the project's watched cohorts what its users want, in the caller's transaction: those an
 * enabled subscription wants member events of, and those an enabled ASAP or as-met message
 * follows. Called by whatever changes one of them.
 */
export async function refreshWatches(trx: Transaction<Database>, projectId: number, now: number): Promise<void> {
  const subscriptions = await enabledSubscriptions(trx, projectId);
  const bySubscriptions = subscriptions.filter((s) => readJson<string[]>(s.event_types).some((t) => MEMBER_EVENTS.includes(t))).flatMap((s) => readJson<number[]>(s.cohort_ids));
  const byMessages = await liveMessageCohorts(trx, projectId);
  await setWatches(trx, projectId, [...new Set([...bySubscriptions, ...byMessages])], now);
}

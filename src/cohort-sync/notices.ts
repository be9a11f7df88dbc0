import type { Transaction } from 'kysely';
import { emailDelivery } from '../channels/email.js';
import type { Outbox } from '../delivery/outbox.js';
import { setSyncState } from '../store/cohort-sync-repo.js';
import { cohortLabel } from '../store/cohorts-repo.js';
import { readJson, type Database } from '../store/schema.js';

export const NOTICE_OWNER = 'cohort-sync-notice';

/** Where a sync's events go (the subscriptions' emitter): written only when a subscription wants them. */
export interface SyncEvents {
  emit(trx: Transaction<Database>, projectId: number, type: string, data: Record<string, unknown>[], now?: number): Promise<void>;
}

/** The e-mail that tells a sync's owners it paused, and how to start it again. */
export function pauseNotice(s: { syncId: number; projectId: number; connectionId: number; cohortName: string }, reason: string): { subject: string; text: string } {
  return {
    subject: `cohortcast: the sync of cohort ${s.cohortName} is paused`,
    text: [
      `The sync ${s.syncId} of cohort ${s.cohortName} to connection ${s.connectionId} (project ${s.projectId}) is paused:`,
      '',
      `  ${reason}`,
      '',
      'Nothing more is sent until it is resumed. Fix the receiver, then:',
      `  POST /api/v1/cohort-syncs/${s.syncId}/resume`,
      'The paused run goes on from its first unacknowledged page.',
    ].join('\n'),
  };
}

/**
 * Pauses a sync (Mixpanel pauses on 400/401/403/404) and, in the same transaction, queues the
 * e-mail to its owners: a crash loses neither, a refusing mail server delays only the e-mail.
 */
export async function pauseSync(trx: Transaction<Database>, outbox: Outbox, syncId: number, reason: string, now: number, events?: SyncEvents): Promise<void> {
  const sync = await setSyncState(trx, syncId, 'paused', reason, now);
  if (!sync) return;
  await events?.emit(trx, sync.project_id, 'cohort_sync.paused', [{ sync_id: syncId, cohort_id: sync.cohort_id, connection_id: sync.connection_id, reason }], now);
  const recipients = readJson<string[]>(sync.owner_emails);
  if (recipients.length === 0) return;
  const cohort = await cohortLabel(trx, sync.cohort_id);
  const notice = pauseNotice({ syncId, projectId: sync.project_id, connectionId: sync.connection_id, cohortName: cohort ? `"${cohort.name}"` : `${sync.cohort_id}` }, reason);
  await outbox.enqueue(trx, [emailDelivery({ projectId: sync.project_id, to: recipients, subject: notice.subject, text: notice.text, ownerKind: NOTICE_OWNER, ownerId: syncId })], now);
}

import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../store/schema.js';
import { insertDeliveries } from '../store/outbox-repo.js';
import type { PolicyName } from './policies.js';
import { newWebhookId } from './signing.js';

/** One HTTP request a surface wants made. */
export interface NewDelivery {
  projectId: number;
  connectionId: number;
  /** Who hears how it ends (see owners.ts), e.g. "cohort-sync-page" and its row id. */
  ownerKind: string;
  ownerId: string | number;
  policy: PolicyName;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
  /** Not before this time (ms); default now. */
  notBefore?: number;
}

/**
 * The transactional outbox: call with the producer's own transaction, so its state change and
 * the deliveries it causes commit together or not at all. Each delivery gets its webhook-id here,
 * once, and keeps it on every retry.
 */
export async function enqueue(db: Kysely<Database> | Transaction<Database>, items: NewDelivery[], now = Date.now()) {
  return insertDeliveries(
    db,
    items.map((d) => ({
      projectId: d.projectId,
      connectionId: d.connectionId,
      webhookId: newWebhookId(),
      ownerKind: d.ownerKind,
      ownerId: String(d.ownerId),
      policy: d.policy,
      contentType: d.contentType,
      body: d.body,
      headers: d.headers ?? {},
      notBefore: d.notBefore ?? now,
    })),
    now,
  );
}

import type { ClaimedDelivery } from '../store/outbox-repo.js';
import { readJson } from '../store/schema.js';
import type { LiveConnection } from './connections.js';
import type { OutboundRequest } from './http-sender.js';

const USER_AGENT = 'cohortcast-webhooks/1';

/** The HTTP request for one attempt: same webhook-id every time, a fresh timestamp and signature (made as it is sent). */
export function buildRequest(connection: LiveConnection, delivery: ClaimedDelivery, maxTimeoutMs: number): OutboundRequest {
  const headers: Record<string, string> = {
    'user-agent': USER_AGENT,
    ...connection.headers,
    ...readJson<Record<string, string>>(delivery.headers),
    'content-type': delivery.content_type,
  };
  // The connection's timeout was checked against the lease of the process that stored it; this
  // process's lease may be shorter.
  return {
    url: connection.url,
    headers,
    body: delivery.body,
    timeoutMs: Math.min(connection.timeoutMs, maxTimeoutMs),
    signature: { webhookId: delivery.webhook_id, keys: connection.signing },
    destination: { id: connection.id, maxConcurrency: connection.maxConcurrency },
    leaseUntil: delivery.next_attempt_at,
  };
}

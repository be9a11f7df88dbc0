import type { ClaimedDelivery } from '../store/leases.js';
import { readJson } from '../store/schema.js';
import type { ConnectionChannel } from '../delivery/channels.js';
import { classify } from '../delivery/classify.js';
import type { LiveConnection } from '../delivery/connections.js';
import type { OutboundRequest, Sender } from '../delivery/http-sender.js';

const USER_AGENT = 'cohortcast-webhooks/1';

/** The HTTP request for one attempt: same webhook-id every time, a fresh timestamp and signature (made as it is sent). */
export function webhookRequest(connection: LiveConnection, delivery: ClaimedDelivery, maxTimeoutMs: number): OutboundRequest {
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

/** A channel that POSTs through a connection: the sender's per-connection queue, judged by HTTP status under the delivery's policy. */
export function connectionChannel(name: string, sender: Sender, defaultThrottleMs: number, request: (delivery: ClaimedDelivery, connection: LiveConnection, maxTimeoutMs: number) => OutboundRequest): ConnectionChannel {
  return {
    name,
    bound: 'connection',
    send(delivery, connection, opts) {
      const r = request(delivery, connection, opts.maxTimeoutMs);
      if (!opts.queue) delete r.destination;
      return sender.send(r);
    },
    judge: (policy, result, now) => classify(policy, result, now, defaultThrottleMs),
    withdraw(lane) {
      if (typeof lane === 'number') sender.withdraw(lane);
    },
  };
}

/**
 * Webhooks: a POST of the delivery's body to the connection's URL with its headers and Basic auth,
 * signed as Standard Webhooks say, through the sender's per-connection queue; judged by status
 * (and by the reply, where the policy reads one).
 */
export function webhookChannel(sender: Sender, defaultThrottleMs: number): ConnectionChannel {
  return connectionChannel('webhook', sender, defaultThrottleMs, (delivery, connection, maxTimeoutMs) => webhookRequest(connection, delivery, maxTimeoutMs));
}

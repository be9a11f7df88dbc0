import type { ConnectionChannel } from '../delivery/channels.js';
import type { Sender } from '../delivery/http-sender.js';
import type { RetryPolicy } from '../delivery/policies.js';
import { connectionChannel, webhookRequest } from './webhook.js';

/**
 * Slack incoming webhooks: a POST of the delivery's JSON ({"text", "blocks"}) to the connection's
 * URL (the webhook URL Slack gave), with its custom headers but no signature (Slack checks none).
 * Slack answers 200 "ok"; 400 invalid_payload, 403, 404 no_service and 410 channel_is_archived
 * end a delivery; 429 honours Retry-After.
 */
export const slackPolicy = (schedule: number[], jitter: number): RetryPolicy => ({
  name: 'slack',
  schedule,
  jitter,
  success: '2xx',
  permanent: [400, 403, 404, 410],
  disableOn: [],
  retry: true,
});

export function slackChannel(sender: Sender, defaultThrottleMs: number): ConnectionChannel {
  return connectionChannel('slack', sender, defaultThrottleMs, (delivery, connection, maxTimeoutMs) => {
    const { signature: _unsigned, ...request } = webhookRequest(connection, delivery, maxTimeoutMs);
    return request;
  });
}

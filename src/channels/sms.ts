import type { ConnectionChannel } from '../delivery/channels.js';
import type { Sender } from '../delivery/http-sender.js';
import type { RetryPolicy } from '../delivery/policies.js';
import { connectionChannel, webhookRequest } from './webhook.js';

/**
 * SMS through Twilio's Messages API: the connection's URL is
 * https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json with Basic auth
 * AccountSid:AuthToken; each message is a form POST of To, From and Body (one recipient a
 * delivery), the body cut at Twilio's 1,600 characters. 201 is success; 400, 401, 403 and 404 end
 * a delivery (a bad number, bad credentials); others are retried.
 */
export const SMS_MAX_CHARS = 1600;
export const TWILIO_MESSAGES_PATH = /^\/2010-04-01\/Accounts\/[A-Za-z0-9]+\/Messages\.json$/;

export function smsBody(from: string, to: string, text: string): string {
  const body = [...text].length > SMS_MAX_CHARS ? [...text].slice(0, SMS_MAX_CHARS - 1).join('') + '…' : text;
  return new URLSearchParams({ To: to, From: from, Body: body }).toString();
}

export const smsPolicy = (schedule: number[], jitter: number): RetryPolicy => ({
  name: 'sms',
  schedule,
  jitter,
  success: '2xx',
  permanent: [400, 401, 403, 404],
  disableOn: [],
  retry: true,
});

export function smsChannel(sender: Sender, defaultThrottleMs: number): ConnectionChannel {
  return connectionChannel('sms', sender, defaultThrottleMs, (delivery, connection, maxTimeoutMs) => {
    // The body is the form (content type set when it was made); Twilio answers JSON. Not signed: Twilio checks Basic auth.
    const { signature: _unsigned, ...request } = webhookRequest(connection, delivery, maxTimeoutMs);
    return { ...request, headers: { ...request.headers, accept: 'application/json' } };
  });
}

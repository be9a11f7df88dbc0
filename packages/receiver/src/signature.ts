import crypto from 'node:crypto';

/** Why a request's Standard Webhooks signature was not accepted. */
export class WebhookVerificationError extends Error {
  constructor(
    readonly reason: 'missing_headers' | 'bad_timestamp' | 'too_old' | 'too_new' | 'bad_secret' | 'no_match',
    message: string,
  ) {
    super(message);
  }
}

export interface VerifyOptions {
  /** whsec_… secrets; during a sender's key rotation give both (any one matching is enough). */
  secrets: string | string[];
  /** Request headers, as Node gives them (lower-case names) or any record. */
  headers: Record<string, string | string[] | undefined>;
  /** The raw body, exactly as received. */
  body: string | Buffer;
  /** Milliseconds since the epoch; injectable for tests and replays. Default Date.now. */
  now?: () => number;
  /** How far the webhook-timestamp may be from now, in seconds (default 300, as the standard suggests). */
  toleranceSeconds?: number;
}

const header = (headers: VerifyOptions['headers'], name: string): string | undefined => {
  const v = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
};

function secretKey(secret: string): Buffer {
  const b64 = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  const key = Buffer.from(b64, 'base64');
  if (key.length < 16) throw new WebhookVerificationError('bad_secret', 'the signing secret is not "whsec_" followed by base64 of the key');
  return key;
}

/**
 * Checks a Standard Webhooks request (https://www.standardwebhooks.com/): webhook-id,
 * webhook-timestamp within the tolerance, and one `v1,` signature in webhook-signature that is the
 * HMAC-SHA256 of `id.timestamp.body` under one of the secrets. Answers the id (for de-duplication)
 * and the timestamp; throws WebhookVerificationError saying what is wrong.
 */
export function verifySignature(opts: VerifyOptions): { webhookId: string; timestamp: number } {
  const id = header(opts.headers, 'webhook-id');
  const ts = header(opts.headers, 'webhook-timestamp');
  const signatures = header(opts.headers, 'webhook-signature');
  if (!id || !ts || !signatures) throw new WebhookVerificationError('missing_headers', 'webhook-id, webhook-timestamp and webhook-signature are all required');
  if (!/^\d{1,12}$/.test(ts)) throw new WebhookVerificationError('bad_timestamp', `webhook-timestamp must be whole seconds since the epoch, got "${ts}"`);
  const timestamp = Number(ts);
  const now = Math.floor((opts.now ?? Date.now)() / 1000);
  const tolerance = opts.toleranceSeconds ?? 300;
  if (timestamp < now - tolerance) throw new WebhookVerificationError('too_old', `webhook-timestamp is ${now - timestamp} s old; at most ${tolerance} s is accepted`);
  if (timestamp > now + tolerance) throw new WebhookVerificationError('too_new', `webhook-timestamp is ${timestamp - now} s in the future; at most ${tolerance} s is accepted`);
  const content = Buffer.concat([Buffer.from(`${id}.${ts}.`), typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body]);
  const given = signatures
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  for (const secret of Array.isArray(opts.secrets) ? opts.secrets : [opts.secrets]) {
    const expected = crypto.createHmac('sha256', secretKey(secret)).update(content).digest();
    if (given.some((g) => g.length === expected.length && crypto.timingSafeEqual(g, expected))) return { webhookId: id, timestamp };
  }
  throw new WebhookVerificationError('no_match', 'no v1 signature matches: a wrong secret, or the body was changed on the way');
}

import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import {
  generateEd25519KeyPair,
  generateSigningSecret,
  newWebhookId,
  signatureHeader,
  verifyEd25519,
  webhookHeaders,
} from '../../src/delivery/signing.js';

const now = () => Math.floor(Date.now() / 1000);
const body = JSON.stringify({ type: 'cohort.updated', data: { id: 7, name: 'Pro users', note: 'é ✓ 🚀' } });

/** standardwebhooks' verify: returns the parsed body, throws WebhookVerificationError. */
const verifies = (secret: string, payload: string | Buffer, headers: Record<string, string>) => {
  try {
    new Webhook(secret).verify(payload, headers);
    return true;
  } catch {
    return false;
  }
};

describe('v1 signatures, checked by the standardwebhooks package', () => {
  it('verify for string and Buffer bodies', () => {
    const secret = generateSigningSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const id = newWebhookId();
    const ts = now();
    const fromString = webhookHeaders(id, ts, body, { secrets: [secret] });
    expect(Object.keys(fromString).sort()).toEqual(['webhook-id', 'webhook-signature', 'webhook-timestamp']);
    expect(fromString['webhook-id']).toBe(id);
    expect(fromString['webhook-timestamp']).toBe(String(ts));
    expect(new Webhook(secret).verify(body, fromString)).toEqual(JSON.parse(body));

    const bytes = Buffer.from(body);
    const fromBuffer = webhookHeaders(id, ts, bytes, { secrets: [secret] });
    expect(fromBuffer).toEqual(fromString);
    expect(new Webhook(secret).verify(bytes, fromBuffer)).toEqual(JSON.parse(body));
  });

  it('during a rotation, a receiver holding either secret verifies', () => {
    const [current, previous] = [generateSigningSecret(), generateSigningSecret()];
    const headers = webhookHeaders(newWebhookId(), now(), body, { secrets: [current, previous] });
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(verifies(current, body, headers)).toBe(true);
    expect(verifies(previous, body, headers)).toBe(true);
    expect(verifies(generateSigningSecret(), body, headers)).toBe(false);
  });

  it('a wrong secret or a tampered body, id or timestamp fails', () => {
    const secret = generateSigningSecret();
    const id = newWebhookId();
    const ts = now();
    const headers = webhookHeaders(id, ts, body, { secrets: [secret] });
    expect(verifies(generateSigningSecret(), body, headers)).toBe(false);
    expect(verifies(secret, body.replace('Pro users', 'Pro userz'), headers)).toBe(false);
    expect(verifies(secret, body, { ...headers, 'webhook-id': newWebhookId() })).toBe(false);
    expect(verifies(secret, body, { ...headers, 'webhook-timestamp': String(ts - 1) })).toBe(false);
  });

  it('an empty body signs and verifies', () => {
    const secret = generateSigningSecret();
    const headers = webhookHeaders(newWebhookId(), now(), '', { secrets: [secret] });
    expect(verifies(secret, '', headers)).toBe(true);
  });

  it('matches the published Standard Webhooks test vector, recomputed here with createHmac', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const [id, ts, payload] = ['msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'];
    const expected = crypto
      .createHmac('sha256', Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64'))
      .update(`${id}.${ts}.${payload}`)
      .digest('base64');
    expect(expected).toBe('g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(signatureHeader(id, ts, payload, { secrets: [secret] })).toBe(`v1,${expected}`);
    expect(new Webhook(secret).sign(id, new Date(ts * 1000), payload)).toBe(`v1,${expected}`);
  });

  it('signs raw bytes as given, not a re-encoding of them', () => {
    const secret = generateSigningSecret();
    const bytes = Buffer.from([0xff, 0x00, 0xfe]);
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    const expected = crypto.createHmac('sha256', key).update(Buffer.concat([Buffer.from('msg_1.5.'), bytes])).digest('base64');
    expect(signatureHeader('msg_1', 5, bytes, { secrets: [secret] })).toBe(`v1,${expected}`);
  });
});

describe('v1a (ed25519) signatures', () => {
  it('come after the v1 ones, verify with the public key, and fail when anything is tampered with', () => {
    const { privateKey, publicKey } = generateEd25519KeyPair();
    expect(privateKey).toMatch(/^whsk_[A-Za-z0-9+/]{43}=$/);
    expect(publicKey).toMatch(/^whpk_[A-Za-z0-9+/]{43}=$/);
    const secret = generateSigningSecret();
    const id = newWebhookId();
    const ts = now();
    const header = signatureHeader(id, ts, body, { secrets: [secret], ed25519PrivateKey: privateKey });
    const parts = header.split(' ');
    expect(parts.map((p) => p.split(',')[0])).toEqual(['v1', 'v1a']);
    expect(Buffer.from(parts[1]!.slice(4), 'base64')).toHaveLength(64);

    expect(verifyEd25519(publicKey, id, ts, body, header)).toBe(true);
    expect(verifyEd25519(publicKey, id, ts, Buffer.from(body), header)).toBe(true);
    expect(verifyEd25519(publicKey, id, ts, `${body} `, header)).toBe(false);
    expect(verifyEd25519(publicKey, id, ts + 1, body, header)).toBe(false);
    expect(verifyEd25519(publicKey, newWebhookId(), ts, body, header)).toBe(false);
    expect(verifyEd25519(generateEd25519KeyPair().publicKey, id, ts, body, header)).toBe(false);
    const flipped = Buffer.from(parts[1]!.slice(4), 'base64');
    flipped[0] = flipped[0]! ^ 1;
    expect(verifyEd25519(publicKey, id, ts, body, `v1a,${flipped.toString('base64')}`)).toBe(false);
    expect(verifyEd25519(publicKey, id, ts, body, parts[0]!)).toBe(false); // only a v1
    expect(verifyEd25519(publicKey, id, ts, body, 'v1a,%%% v1a,')).toBe(false);
  });

  it('alone, without any whsec_ secret', () => {
    const { privateKey, publicKey } = generateEd25519KeyPair();
    const headers = webhookHeaders('msg_x', 1700000000, body, { secrets: [], ed25519PrivateKey: privateKey });
    expect(headers['webhook-signature']).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);
    expect(verifyEd25519(publicKey, 'msg_x', 1700000000, body, headers['webhook-signature']!)).toBe(true);
  });

  it('is ignored by symmetric verifiers, which still accept the v1 beside it', () => {
    const secret = generateSigningSecret();
    const { privateKey } = generateEd25519KeyPair();
    const headers = webhookHeaders(newWebhookId(), now(), body, { secrets: [secret], ed25519PrivateKey: privateKey });
    expect(verifies(secret, body, headers)).toBe(true);
    // v1a first, too: the package skips versions it does not know instead of giving up.
    const [v1, v1a] = headers['webhook-signature']!.split(' ');
    expect(verifies(secret, body, { ...headers, 'webhook-signature': `${v1a} ${v1}` })).toBe(true);
    expect(verifies(secret, body, { ...headers, 'webhook-signature': v1a! })).toBe(false);
  });

  it('accepts libsodium-style 64-byte private keys (seed + public key) and refuses a mismatched one', () => {
    const { privateKey, publicKey } = generateEd25519KeyPair();
    const seed = Buffer.from(privateKey.slice(5), 'base64');
    const pub = Buffer.from(publicKey.slice(5), 'base64');
    const long = `whsk_${Buffer.concat([seed, pub]).toString('base64')}`;
    const header = signatureHeader('msg_a', 1, body, { secrets: [], ed25519PrivateKey: long });
    expect(verifyEd25519(publicKey, 'msg_a', 1, body, header)).toBe(true);
    const other = Buffer.from(generateEd25519KeyPair().publicKey.slice(5), 'base64');
    const wrong = `whsk_${Buffer.concat([seed, other]).toString('base64')}`;
    expect(() => signatureHeader('msg_a', 1, body, { secrets: [], ed25519PrivateKey: wrong })).toThrow(/ed25519 private key is malformed/);
  });
});

describe('headers and errors', () => {
  it('leave out webhook-signature when there are no keys, and signatureHeader refuses to sign with none', () => {
    expect(webhookHeaders('msg_a', 1700000000, body, { secrets: [] })).toEqual({ 'webhook-id': 'msg_a', 'webhook-timestamp': '1700000000' });
    expect(() => signatureHeader('msg_a', 1700000000, body, { secrets: [] })).toThrow(/without keys/);
  });

  it('refuse malformed secrets and keys with a clear message that does not show them', () => {
    const sign = (secrets: string[], ed25519PrivateKey?: string) => () => signatureHeader('msg_a', 1, body, { secrets, ed25519PrivateKey });
    const good = generateSigningSecret();
    for (const bad of ['', 'whsec_', 'not-a-secret', good.slice('whsec_'.length), 'whsec_@@@@', 'whsec_' + Buffer.alloc(16).toString('base64'), 'whsec_' + Buffer.alloc(65).toString('base64')]) {
      expect(sign([good, bad]), bad).toThrow('signing secret 2 of 2 is malformed: expected "whsec_" followed by base64 of 24 to 64 bytes');
    }
    expect(sign([], 'whsk_abc')).toThrow(/ed25519 private key is malformed: expected "whsk_"/);
    expect(sign([], good)).toThrow(/ed25519 private key is malformed/);
    expect(() => verifyEd25519('whpk_short', 'msg_a', 1, body, 'v1a,x')).toThrow(/ed25519 public key is malformed/);
    const message = (() => {
      try {
        sign(['whsec_secretpart!'])();
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    })();
    expect(message).toMatch(/malformed/);
    expect(message).not.toContain('secretpart');
  });

  it('refuse ids with a "." or spaces and timestamps that are not whole seconds', () => {
    const keys = { secrets: [generateSigningSecret()] };
    expect(() => signatureHeader('msg_a.1', 1, body, keys)).toThrow(/webhook id/);
    expect(() => signatureHeader('msg a', 1, body, keys)).toThrow(/webhook id/);
    expect(() => signatureHeader('', 1, body, keys)).toThrow(/webhook id/);
    expect(() => signatureHeader('msg_a', 1.5, body, keys)).toThrow(/whole seconds/);
    expect(() => signatureHeader('msg_a', Date.now() * 1e6, body, keys)).toThrow(/whole seconds/);
  });
});

describe('newWebhookId', () => {
  it('is unique over 10,000 calls, URL-safe and sorts by time', () => {
    const ids = Array.from({ length: 10_000 }, newWebhookId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^msg_[A-Za-z0-9]+$/);
    expect(ids[0]).toHaveLength(4 + 12 + 16);
    const stamp = (id: string) => parseInt(id.slice(4, 16), 16);
    expect(Math.abs(stamp(ids[0]!) - Date.now())).toBeLessThan(60_000);
    const stamps = ids.map(stamp);
    expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
  });
});
